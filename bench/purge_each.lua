-- wrk script: POST one-URL purges, each of a different URL (a counter per wrk thread), as a CDN's
-- purges are: one changed object at a time, rarely the same one twice in a row. A connection
-- told to wait (503 backlog_full, 429) pauses 100 ms before its next request, as a client that
-- backs off does, instead of hammering the refusal.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local i, refused = 0, false
function setup(thread)
  thread:set("id", math.random(1, 1000000))
end
function request()
  i = i + 1
  return wrk.format(nil, nil, nil,
    string.format('{"urls":["https://bench.example/t%d/obj%d.css"]}', id or 0, i))
end
function response(status)
  refused = status == 503 or status == 429
end
function delay()
  return refused and 100 or 0
end
