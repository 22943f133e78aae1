-- wrk script: POST /api/users with a unique email per request (per thread and counter), as the
-- admin whose access token is in BENCH_TOKEN (creating users is for admins).
local counter = 0
local thread_id = 0
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  thread_id = id
end

function request()
  counter = counter + 1
  local body = string.format('{"name":"Bench %d","email":"bench-%d-%d-%d@example.com"}',
    counter, os.time(), thread_id, counter)
  return wrk.format("POST", "/api/users", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
  }, body)
end
