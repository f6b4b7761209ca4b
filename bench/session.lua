-- wrk script that keeps session cookies, as browsers do. wrk's Lua cannot
-- tell connections apart, so each thread keeps one cookie slot per
-- connection it drives and sends requests from the slots in turn; a slot
-- without a cookie sends none, and the next Set-Cookie fills it. done()
-- prints one JSON line for the runner (latencies in microseconds).
--
--   wrk -t2 -c64 -d10s -s bench/session.lua http://127.0.0.1:8080/read -- 32
--
-- With a second and third argument, a file of "name=value" cookie lines
-- (sessions created beforehand, bench/runner/scaling.go) and the number of
-- wrk threads, thread i fills its slots from lines i+1, i+1+threads, ...
-- and picks a slot at random for each request: many live sessions, read
-- in no particular order, none created by the run itself.
--
--   wrk -t2 -c64 -d3s -s bench/session.lua http://127.0.0.1:8080/read -- 500000 cookies.txt 2

local slots = 32
local cookies = {}
local filled = 0 -- slots fill in order: cookies[1..filled] are set
local next_slot = 0
local random = false
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  slots = tonumber(args[1]) or slots
  local file, nthreads = args[2], tonumber(args[3])
  if file and nthreads then
    local i = 0
    for line in io.lines(file) do
      if i % nthreads == id and filled < slots then
        filled = filled + 1
        cookies[filled] = line
      end
      i = i + 1
    end
    slots = math.max(filled, 1)
    random = true
    math.randomseed(os.time() + id)
  end
end

function request()
  if random then
    next_slot = math.random(slots)
  else
    next_slot = next_slot % slots + 1
  end
  local c = cookies[next_slot]
  if c then
    return wrk.format(nil, nil, { ["Cookie"] = c })
  end
  return wrk.format(nil, nil)
end

function response(status, headers, body)
  if filled >= slots then
    return
  end
  local sc = headers["Set-Cookie"] or headers["set-cookie"]
  if sc then
    local v = sc:match("^([^;]+)")
    if v and not v:match("=$") then
      filled = filled + 1
      cookies[filled] = v
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
