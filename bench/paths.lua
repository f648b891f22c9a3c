-- wrk script: request a list of paths in turn with a fixed Host header.
-- Arguments: host, path prefix, number of paths[, method (default GET)[, "once"]]. Paths are
-- <prefix><i>.css, i = 0 .. n-1. With "once" (one wrk thread) the run stops after n responses,
-- every path exactly once like the agent's task it is compared with, and prints
-- "ONCE <requests/s>" timed from the first request to the last response (wrk's own figure
-- divides by the whole -d duration).
local ffi = require("ffi")
ffi.cdef [[
  struct cdr_timespec { long tv_sec; long tv_nsec; };
  int clock_gettime(int clock, struct cdr_timespec *ts);
]]
local function now()
  local ts = ffi.new("struct cdr_timespec")
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local host, prefix, count, method, once
local i, answered, started = 0, 0, nil
function init(args)
  host, prefix, count, method = args[1], args[2], tonumber(args[3]), args[4] or "GET"
  once = args[5] == "once"
end
function request()
  started = started or now()
  i = (i + 1) % count
  return wrk.format(method, prefix .. i .. ".css", {Host = host})
end
function response()
  answered = answered + 1
  if once and answered == count then
    io.write(string.format("ONCE %.1f\n", count / (now() - started)))
    wrk.thread:stop()
  end
end
