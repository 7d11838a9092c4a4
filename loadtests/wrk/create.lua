-- wrk script: POST /beta/identity/userFlows with a unique id per request.
--
--   BENCH_TOKEN=$(userflows-emulator token --tenant bench-tenant) \
--     wrk -t2 -c64 -d10s --latency -s loadtests/wrk/create.lua \
--     http://127.0.0.1:18091/beta/identity/userFlows
--
-- Ids are "<run>t<thread>n<counter>": <run> is random per wrk invocation (from /dev/urandom,
-- so a warm-up and the measured run against the same server never collide), <thread> is
-- assigned in setup() and <counter> is per thread, so ids are unique across all threads and
-- connections. The bearer token comes from $BENCH_TOKEN (unset: no Authorization header,
-- which is fine for the no-op ceiling server).
--
-- With $BENCH_TENANTS=N, requests go round-robin over N tenants ("spread-1" .. "spread-N"),
-- each with its own lenient token built here, instead of $BENCH_TOKEN's one tenant.
--
-- With $BENCH_BATCH=N, each request is a POST /beta/$batch of N such creates (point wrk at
-- http://127.0.0.1:PORT/beta/$batch); a request counts as a 201 only when the batch answered
-- 200 with N item statuses of 201.
--
-- done() prints one machine-readable line:
--   RESULT requests=N duration_us=N rps=X non201=N socket_errors=N p50_us=N p99_us=N statuses=201:N,...

local function random_tag()
  local f = io.open("/dev/urandom", "rb")
  if f then
    local bytes = f:read(6)
    f:close()
    if bytes and #bytes == 6 then
      return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
    end
  end
  -- Fallback: time plus clock, good enough when /dev/urandom is unavailable.
  return string.format("%x%x", os.time(), math.floor(os.clock() * 1e6))
end

-- setup() runs in the main Lua state, once per thread, before init().
local run_tag = "b" .. random_tag()
local next_thread = 0
local threads = {}

function setup(thread)
  next_thread = next_thread + 1
  thread:set("prefix", run_tag .. "t" .. next_thread .. "n")
  table.insert(threads, thread)
end

-- base64url without padding, for the lenient tokens of $BENCH_TENANTS.
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function b64url(text)
  local out = {}
  for i = 1, #text, 3 do
    local a, b, c = text:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = (c and 4) or (b and 3) or 2
    for k = 1, chars do
      local shift = 18 - 6 * (k - 1)
      local v = math.floor(n / 2 ^ shift) % 64
      table.insert(out, B64:sub(v + 1, v + 1))
    end
  end
  return table.concat(out)
end

-- Everything below runs in each thread's own Lua state.
function init(args)
  counter = 0
  non201 = 0
  statuses = {} -- status code -> count, merged across threads in done()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local token = os.getenv("BENCH_TOKEN")
  if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
  batch = tonumber(os.getenv("BENCH_BATCH") or "")
  tenants = {}
  local n = tonumber(os.getenv("BENCH_TENANTS") or "")
  if n and n > 0 then
    local head = b64url('{"alg":"none","typ":"JWT"}')
    for t = 1, n do
      tenants[t] = "Bearer " .. head .. "." .. b64url('{"tid":"spread-' .. t .. '"}') .. ".c2ln"
    end
  end
end

local function create_body()
  counter = counter + 1
  return '{"id":"' .. prefix .. counter ..
    '","userFlowType":"signUpOrSignIn","userFlowTypeVersion":1}'
end

function request()
  local body
  if batch then
    local items = {}
    for i = 1, batch do
      items[i] = '{"id":"' .. i .. '","method":"POST","url":"/identity/userFlows",' ..
        '"headers":{"Content-Type":"application/json"},"body":' .. create_body() .. '}'
    end
    body = '{"requests":[' .. table.concat(items, ",") .. ']}'
  else
    body = create_body()
  end
  if #tenants > 0 then
    wrk.headers["Authorization"] = tenants[(counter % #tenants) + 1]
  end
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if batch then
    local created, at = 0, 1
    while true do
      at = body:find('"status":201', at, true)
      if not at then break end
      created, at = created + 1, at + 12
    end
    if status == 200 and created == batch then status = 201 end
  end
  if status ~= 201 then
    non201 = non201 + 1
  end
  statuses[status] = (statuses[status] or 0) + 1
end

-- done() runs in the main state; per-thread globals are read with thread:get().
function done(summary, latency, requests)
  local total_non201 = 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    total_non201 = total_non201 + (thread:get("non201") or 0)
    local s = thread:get("statuses")
    if type(s) == "table" then
      for code, n in pairs(s) do
        by_status[code] = (by_status[code] or 0) + n
      end
    end
  end
  local codes = {}
  for code in pairs(by_status) do table.insert(codes, code) end
  table.sort(codes)
  local parts = {}
  for _, code in ipairs(codes) do
    table.insert(parts, code .. ":" .. by_status[code])
  end
  local e = summary.errors
  local socket_errors = e.connect + e.read + e.write + e.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f non201=%d socket_errors=%d p50_us=%d p99_us=%d statuses=%s\n",
    summary.requests, summary.duration, summary.requests / seconds, total_non201, socket_errors,
    latency:percentile(50), latency:percentile(99),
    #parts > 0 and table.concat(parts, ",") or "none"))
end
