-- Every request carries a different token: init() reads one token a line from args[1] and
-- pre-builds each request; request() cycles through them, starting at offset args[2].
local reqs = {}
local n = 0
local i = 0

function init(args)
  local host = wrk.headers["Host"]
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.method .. " " .. wrk.path .. " HTTP/1.1\r\nHost: " .. host ..
                "\r\nAuthorization: Bearer " .. line .. "\r\n\r\n"
    end
  end
  if n == 0 then error("no tokens in " .. args[1]) end
  i = tonumber(args[2] or "0") % n
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end
