-- wrk script for the Schakel bench. Every request carries a unique message id; each thread logs
-- when it sent which id, and when which answer came back, so that run.py can join them with the
-- partner's arrival times. Settings come from the environment (run.py sets them):
--
--   BENCH_PATH      request path                  BENCH_TEMPLATE  file with the body; @ID@ and @BSN@ are filled in
--   BENCH_TYPE      Content-Type                  BENCH_BSNS      comma-separated fictional BSNs for @BSN@, in turn
--   BENCH_TOKEN     bearer token, or empty        BENCH_IDEM      "1": send the id as Idempotency-Key
--   BENCH_PREFIX    id prefix, unique per run     BENCH_LOG       log file prefix (one file per thread)
--   BENCH_PATTERN   Lua pattern that finds the key in an answer   BENCH_DELAY_MS  pause per connection between requests
--   BENCH_RETOUR    "1": the answer is an iWmo retour; one with any code but 0200 is logged as refused (422)

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
-- CLOCK_REALTIME (0): the clock the partner and the gateway stamp with, so times compare across processes.
local function now()
  ffi.C.clock_gettime(0, clock)
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local function split(text, mark)
  local parts, from = {}, 1
  while true do
    local i, j = string.find(text, mark, from, true)
    if not i then table.insert(parts, string.sub(text, from)); return parts end
    table.insert(parts, string.sub(text, from, i - 1))
    from = j + 1
  end
end

function init(args)
  local file = assert(io.open(os.getenv("BENCH_TEMPLATE"), "rb"))
  local template = file:read("*a")
  file:close()
  parts = split(template, "@ID@")
  bsns = {}
  for bsn in string.gmatch(os.getenv("BENCH_BSNS") or "", "[^,]+") do table.insert(bsns, bsn) end
  path = os.getenv("BENCH_PATH")
  pattern = os.getenv("BENCH_PATTERN")
  idem = os.getenv("BENCH_IDEM") == "1"
  retour = os.getenv("BENCH_RETOUR") == "1"
  prefix = os.getenv("BENCH_PREFIX") .. tid
  headers = {["Content-Type"] = os.getenv("BENCH_TYPE")}
  local token = os.getenv("BENCH_TOKEN") or ""
  if token ~= "" then headers["Authorization"] = "Bearer " .. token end
  log = assert(io.open(os.getenv("BENCH_LOG") .. "-" .. tid .. ".log", "w"))
  counter = 0
end

local function body(id)
  local text = table.concat(parts, id)
  if #bsns > 0 then
    text = string.gsub(text, "@BSN@", bsns[(counter % #bsns) + 1], 1)
  end
  return text
end

function request()
  counter = counter + 1
  local id = prefix .. counter
  if idem then headers["Idempotency-Key"] = id end
  local request = wrk.format("POST", path, headers, body(id))
  log:write("S ", id, " ", string.format("%.6f", now()), "\n")
  return request
end

function response(status, headers, answer)
  local t = now()
  local key = (answer and string.match(answer, pattern)) or "-"
  if retour and answer then
    -- A retour answers every message with 200; its codes say whether the message was taken.
    for code in string.gmatch(answer, "RetourCode>(%d+)<") do
      if code ~= "0200" then status = 422 end
    end
  end
  log:write("R ", key, " ", status, " ", string.format("%.6f", t), "\n")
end

local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  function delay() return pause end
end

function done(summary, latency, requests)
  io.write(string.format('BENCH {"duration_us": %d, "requests": %d, "connect_errors": %d, "read_errors": %d, '
    .. '"write_errors": %d, "status_errors": %d, "timeouts": %d}\n', summary.duration, summary.requests,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout))
end
