-- refresh_token grants for wrk: a pool of refresh tokens (one family per connection), each
-- answer's new token goes back into the pool, so no token is ever presented twice.
-- usage: wrk -s issuer_refresh.lua URL -- TOKENS_FILE
local tokens = {}
local failures = 0

function init(args)
  for line in io.lines(args[1]) do
    table.insert(tokens, line)
  end
end

function request()
  local t = table.remove(tokens) or "pool-empty"
  return wrk.format("POST", "/token",
    {["Content-Type"] = "application/x-www-form-urlencoded"},
    "grant_type=refresh_token&refresh_token=" .. t)
end

function response(status, headers, body)
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then
    table.insert(tokens, t)
  else
    failures = failures + 1
  end
end
