-- wrk script: POST /api/auth/login with the bench account's credentials (BENCH_EMAIL,
-- BENCH_PASSWORD): every request is a successful sign-in, so each costs one argon2id check.
local body = string.format('{"email":"%s","password":"%s"}',
  os.getenv("BENCH_EMAIL"), os.getenv("BENCH_PASSWORD"))

function request()
  return wrk.format("POST", "/api/auth/login", { ["Content-Type"] = "application/json" }, body)
end
