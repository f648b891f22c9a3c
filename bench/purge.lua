-- wrk script: POST one-URL purges to the engine.
wrk.method = "POST"
wrk.body = '{"urls":["https://bench.example/static/app.css"]}'
wrk.headers["Content-Type"] = "application/json"
