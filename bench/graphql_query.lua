-- wrk script: POST the GraphQL query in $QUERY_BODY (JSON-encoded by the caller) to /graphql,
-- with the access token in $BENCH_TOKEN as a bearer token when it is set.
local body = os.getenv("QUERY_BODY")
local token = os.getenv("BENCH_TOKEN")
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
