-- serve_wrk.lua - wrk script for bench/serve.sh: POST /v1/embeddings with request
-- bodies read from a file (one JSON body per line; each wrk thread starts at a
-- different line and cycles), and a JSON summary line with p50/p99 latency.
--   wrk -c 64 -d 5s -s bench/serve_wrk.lua http://127.0.0.1:PORT -- bodies.jsonl
local bodies = {}
local i = 0
local counter = 0

setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
end

init = function(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do bodies[#bodies + 1] = line end
  f:close()
  i = (id or 0) * 997 % #bodies
end

request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/embeddings", {["Content-Type"] = "application/json"}, bodies[i])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"socket_errors": %d, "non2xx": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
