-- wrk script for scripts/load: POSTs distinct single JSON order events.
-- Each request gets a unique event_id (thread id + run stamp + counter);
-- 5,000 distinct people, so identities repeat as in real traffic.
-- done() prints one machine-readable LOADRESULT line for scripts/load.
-- With LOAD_IDS=<path> set, every answer is written to <path>-<thread> as
-- one line "status body", so the script can compare the ids Inlet
-- acknowledged with the ids it stored (slower: wrk then reads bodies).
-- LOAD_SALT tells apart wrk processes started in the same second (Lua's
-- math.random is the same sequence in every process).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  counter = 0
  people = 5000
  prefix = string.format("%s%d-%d-%d-", os.getenv("LOAD_SALT") or "", tid, os.time(), math.random(1, 1000000000))
  local ids = os.getenv("LOAD_IDS")
  if ids and ids ~= "" then
    answers = assert(io.open(ids .. "-" .. tid, "w"))
  end
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  counter = counter + 1
  local k = (counter * 7 + tid * 131) % people
  local body = string.format(
    '{"type":"order","event_id":"%s%d","email":"user%d@example.org","user_id":"u%d","anonymous_id":"v%d","total":12.5}',
    prefix, counter, k, k, k)
  return wrk.format("POST", nil, headers, body)
end

-- Defined only with LOAD_IDS: wrk skips reading bodies when there is none.
if os.getenv("LOAD_IDS") and os.getenv("LOAD_IDS") ~= "" then
  function response(status, headers, body)
    answers:write(status, " ", body, "\n")
    answers:flush()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "LOADRESULT requests=%d status_errors=%d socket_errors=%d duration_us=%d p50_us=%d p99_us=%d\n",
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
