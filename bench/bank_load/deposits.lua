-- wrk script for bench/bank_load.sh: POST /accounts/acc-<n>/deposits, spread uniformly
-- over ACCOUNTS accounts (acc-0 .. acc-<ACCOUNTS-1>), amount 1, no command id.
--
-- The requests are formatted once, in init(): request() only picks one. wrk shares the
-- machine with the daemon, so what its Lua costs per request is taken from the daemon.
local accounts = tonumber(os.getenv("ACCOUNTS") or "1000")
local token = os.getenv("TOKEN")
local headers = { ["Content-Type"] = "application/json" }
if token and token ~= "" then
  headers["Authorization"] = "Bearer " .. token
end
local body = '{"amount":1}'
local requests = {}

function setup(thread)
  -- Different seeds per thread, so threads do not walk the same account sequence.
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed or 1)
  for n = 0, accounts - 1 do
    requests[n + 1] = wrk.format("POST", "/accounts/acc-" .. n .. "/deposits", headers, body)
  end
end

function request()
  return requests[math.random(1, accounts)]
end
