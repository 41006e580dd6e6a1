-- wrk script: POST one TASTE enrolment per request, each with a record id and subject no other
-- request of the run uses (thread number, then a counter). Counts answers other than 201.
-- Used by benches/enrolment_wrk.sh; the bearer token comes in the environment (RRCT_TOKEN).

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

local sites = { "UPP", "LKP", "SUS", "SAH", "KS", "ORE", "UMEA", "VAS", "DAN", "SOS", "ICE" }
local run = os.getenv("RRCT_RUN") or "w"
local refused = 0
-- TASTE asks for the oral consent taken; RRCT_EXTRA replaces it for another protocol.
local extra = os.getenv("RRCT_EXTRA")
   or ',"consent":{"kind":"oral","taken_by":"cath-lab","taken_at":"2026-01-01"}'

function init(args)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Authorization"] = "Bearer " .. os.getenv("RRCT_TOKEN")
end

function request()
   counter = counter + 1
   local id = string.format("%s%d-%07d", run, tid, counter)
   local body = string.format(
      '{"record_id":"R%s","subject":"S%s","site":"%s","fields":{"age":%d,"sex":"%s",'
      .. '"diagnosis":"STEMI","symptom_onset_hours":3.5}%s}',
      id, id, sites[(counter % #sites) + 1], 40 + counter % 50,
      (counter % 2 == 0) and "F" or "M", extra)
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   if status ~= 201 then
      refused = refused + 1
      if refused <= 3 then
         io.stderr:write("answer " .. status .. ": " .. body .. "\n")
      end
   end
end

function done(summary, latency, requests)
   local p = function(q) return latency:percentile(q) / 1000.0 end
   io.write(string.format(
      "RESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%d\n",
      summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
      p(50), p(90), p(99), latency.max / 1000.0,
      summary.errors.status + summary.errors.connect + summary.errors.read
         + summary.errors.write + summary.errors.timeout))
end
