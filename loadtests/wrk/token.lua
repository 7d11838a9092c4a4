-- wrk script: POST /{tenant}/oauth2/v2.0/token, client credentials, the same form every time.
--
--   wrk -t2 -c16 -d10s -s loadtests/wrk/token.lua http://127.0.0.1:18100/bench/oauth2/v2.0/token
--
-- The app is "bench" with secret "bench-secret" (start the server with --app bench:bench-secret,
-- or with no --app, where any app gets a token). done() prints one machine-readable line:
--   RESULT requests=N rps=X non200=N socket_errors=N p50_us=N p99_us=N

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "grant_type=client_credentials&client_id=bench&client_secret=bench-secret"
  .. "&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local total_non200 = 0
  for _, thread in ipairs(threads) do
    total_non200 = total_non200 + (thread:get("non200") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rps=%.1f non200=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), total_non200,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
