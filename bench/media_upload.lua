-- wrk script: POST /api/upload of one multipart file of MEDIA_BENCH_BYTES bytes (a PNG signature,
-- then zeros), the same body on every request (each upload gets a new id in the service), as
-- the user whose access token is in BENCH_TOKEN (uploads need a signed-in user).
local size = tonumber(os.getenv("MEDIA_BENCH_BYTES") or "1048576")
local token = os.getenv("BENCH_TOKEN")
local boundary = "media-bench-boundary-3f9a"
local request_text

function init(args)
  local file = "\137PNG\r\n\26\n" .. string.rep("\0", size - 8)
  local body = "--" .. boundary .. "\r\n"
    .. "Content-Disposition: form-data; name=\"file\"; filename=\"bench.png\"\r\n"
    .. "Content-Type: image/png\r\n\r\n" .. file .. "\r\n--" .. boundary .. "--\r\n"
  local headers = { ["Content-Type"] = "multipart/form-data; boundary=" .. boundary }
  if token and token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
  request_text = wrk.format("POST", "/api/upload", headers, body)
end

function request()
  return request_text
end
