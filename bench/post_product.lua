-- wrk script: POST /api/products as the admin whose access token is in BENCH_TOKEN (creating
-- products is for admins); names differ per request.
local counter = 0

function request()
  counter = counter + 1
  local body = string.format('{"name":"Bench product %d","price":%d.99}', counter, counter % 1000)
  return wrk.format("POST", "/api/products", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
  }, body)
end
