-- wrk script: request a list of paths in turn with a fixed Host header.
-- Arguments: host, path prefix, number of paths[, method (default GET)]. Paths are
-- <prefix><i>.css, i = 0 .. n-1.
local host, prefix, count, method
local i = 0
function init(args)
  host, prefix, count, method = args[1], args[2], tonumber(args[3]), args[4] or "GET"
end
function request()
  i = (i + 1) % count
  return wrk.format(method, prefix .. i .. ".css", {Host = host})
end
