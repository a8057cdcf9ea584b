-- wrk script for the partner alone: the Care4 simulator sent, in turn, the three requests each of
-- Schakel's WMO301 deliveries makes of it — the client by BSN, her arrangements, the write of one
-- arrangement — with nothing in between. Settings come from the environment (bench/ceiling.py):
--
--   BENCH_CLIENTS  file with one "<bsn> <client id>" per line (the simulator's clients)
--   BENCH_BODY     file with the arrangement written (JSON)
--   BENCH_TOKEN    the simulator's bearer token
--   BENCH_PREFIX   prefix of the writes' Idempotency-Keys, unique per pass
--   BENCH_NUMBER   the arrangement's allocation number (the WMO301's ToewijzingNummer)

local clients, n = {}, 0
for line in io.lines(os.getenv("BENCH_CLIENTS")) do
  local bsn, id = string.match(line, "^(%S+) (%S+)$")
  if bsn then table.insert(clients, {bsn, id}) end
end
local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
local body = file:read("*a")
file:close()
local auth = "Bearer " .. os.getenv("BENCH_TOKEN")
local prefix = os.getenv("BENCH_PREFIX")
local number = os.getenv("BENCH_NUMBER")

request = function()
  n = n + 1
  local message = math.floor((n - 1) / 3)
  local client = clients[(message % #clients) + 1]
  local step = (n - 1) % 3
  if step == 0 then
    return wrk.format("GET", "/clients?bsn=" .. client[1], {["Authorization"] = auth})
  elseif step == 1 then
    return wrk.format("GET", "/clients/" .. client[2] .. "/arrangements", {["Authorization"] = auth})
  end
  -- The same allocation for each client, as the bench's WMO301 makes Schakel write: the simulator
  -- keeps one arrangement a client, as in Schakel's passes (it scans them all for a client's list).
  return wrk.format("PUT", "/clients/" .. client[2] .. "/arrangements/" .. number,
                    {["Authorization"] = auth, ["Content-Type"] = "application/json",
                     ["Idempotency-Key"] = prefix .. message .. ":arrangement"}, body)
end

done = function(summary, latency, requests)
  io.write(string.format('BENCH {"requests":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"status_errors":%d}\n',
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    summary.errors.status))
end
