-- paced.lua: wrk script that runs another wrk script's request (its path is the first argument)
-- and waits 1 ms after each response, so a connection makes a bounded rate (bench/api_ingest.py
-- measures latency at half the peak with it).
function init(args)
  if args[1] then
    dofile(args[1])
  end
end

function delay()
  return 1
end
