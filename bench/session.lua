-- wrk script that keeps session cookies, as browsers do. wrk's Lua cannot
-- tell connections apart, so each thread keeps one cookie slot per
-- connection it drives and sends requests from the slots in turn; a slot
-- without a cookie sends none, and the next Set-Cookie fills it. done()
-- prints one JSON line for the runner (latencies in microseconds).
--
--   wrk -t2 -c64 -d10s -s bench/session.lua http://127.0.0.1:8080/read -- 32

local slots = 32
local cookies = {}
local next_slot = 0

function init(args)
  slots = tonumber(args[1]) or slots
end

function request()
  next_slot = next_slot % slots + 1
  local c = cookies[next_slot]
  if c then
    return wrk.format(nil, nil, { ["Cookie"] = c })
  end
  return wrk.format(nil, nil)
end

function response(status, headers, body)
  local sc = headers["Set-Cookie"] or headers["set-cookie"]
  if sc then
    local v = sc:match("^([^;]+)")
    if v and not v:match("=$") then
      for j = 1, slots do
        if not cookies[j] then
          cookies[j] = v
          break
        end
      end
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"errors":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
