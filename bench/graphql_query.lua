-- wrk script: POST the GraphQL query in $QUERY (JSON-encoded by the caller) to /graphql.
local body = os.getenv("QUERY_BODY")
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
