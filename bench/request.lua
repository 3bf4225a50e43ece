-- One kind of request for wrk, configured from the environment (bench/run.py sets it):
--   BENCH_METHOD, BENCH_BODY (JSON), BENCH_TOKEN (a bearer token),
--   BENCH_DELAY_MS: pause before each request on a connection (0 = back to back). With c
--   connections the offered rate is about c * 1000 / BENCH_DELAY_MS requests per second.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

if pause > 0 then
  function delay()
    return pause
  end
end
