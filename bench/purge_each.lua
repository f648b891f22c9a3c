-- wrk script: POST one-URL purges, each of a different URL (a counter per wrk thread), as a CDN's
-- purges are: one changed object at a time, rarely the same one twice in a row.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local i = 0
function setup(thread)
  thread:set("id", math.random(1, 1000000))
end
function request()
  i = i + 1
  return wrk.format(nil, nil, nil,
    string.format('{"urls":["https://bench.example/t%d/obj%d.css"]}', id or 0, i))
end
