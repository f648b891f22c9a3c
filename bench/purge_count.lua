-- wrk script: POST one-URL purges, each of a different URL, until this thread has had N of them
-- accepted (`wrk ... -- N`), then stop sending: fills an engine with an exact number of tasks
-- (wrk itself runs on until its duration or a signal ends it).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local i, accepted, wanted = 0, 0, 0
function init(args)
  wanted = tonumber(args[1])
end
function request()
  i = i + 1
  return wrk.format(nil, nil, nil, string.format('{"urls":["https://restart.example/obj%d.css"]}', i))
end
function response(status)
  if status == 202 then
    accepted = accepted + 1
  end
  if accepted >= wanted then
    wrk.thread:stop()
  end
end
