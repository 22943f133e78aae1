-- wrk script: POST /api/users with a unique email per request, as the admin whose access token
-- is in BENCH_TOKEN (creating users is for admins). Each thread draws a random nonce, so runs
-- started within the same second (a warm-up and the run after it) never repeat an address.
local counter = 0
local nonce = ""

function init(args)
  local random = io.open("/dev/urandom", "rb")
  nonce = string.gsub(random:read(8), ".", function(c) return string.format("%02x", string.byte(c)) end)
  random:close()
end

function request()
  counter = counter + 1
  local body = string.format('{"name":"Bench %d","email":"bench-%s-%d@example.com"}',
    counter, nonce, counter)
  return wrk.format("POST", "/api/users", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
  }, body)
end
