-- wrk script: POST /api/auth/login, rotating over the bench's accounts bench-1..N@bench.example
-- (N = BENCH_ACCOUNTS) with password BENCH_PASSWORD: every request is a successful sign-in, so
-- each costs one argon2id check. Several accounts, since one account's attempts take turns.
local accounts = tonumber(os.getenv("BENCH_ACCOUNTS"))
local password = os.getenv("BENCH_PASSWORD")
local counter = 0

function request()
  counter = counter + 1
  local body = string.format('{"email":"bench-%d@bench.example","password":"%s"}',
    counter % accounts + 1, password)
  return wrk.format("POST", "/api/auth/login", { ["Content-Type"] = "application/json" }, body)
end
