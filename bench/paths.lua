-- wrk script: GET a list of paths in turn with a fixed Host header.
-- Arguments: host, path prefix, number of paths. Paths are <prefix><i>.css, i = 0 .. n-1.
local host, prefix, count
local i = 0
function init(args)
  host, prefix, count = args[1], args[2], tonumber(args[3])
end
function request()
  i = (i + 1) % count
  return wrk.format("GET", prefix .. i .. ".css", {Host = host})
end
