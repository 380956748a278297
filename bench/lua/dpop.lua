-- A fresh DPoP proof on every request: init() reads one proof a line from args[1] (each with
-- its own jti, made by bench/dpop_bench.py), args[2] is the DPoP-bound access token, args[3]
-- the first proof to use (every wrk run of one bench starts past the proofs already sent).
-- request() sends the proofs in order; past the last one they would repeat (and be refused
-- as replays, counted as non-2xx), so the bench makes more than the run can use.
local proofs = {}
local n = 0
local i = 0
local head = ""

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      proofs[n] = line
    end
  end
  if n == 0 then error("no proofs in " .. args[1]) end
  i = tonumber(args[3] or "0")
  head = wrk.method .. " " .. wrk.path .. " HTTP/1.1\r\nHost: " .. wrk.headers["Host"] ..
         "\r\nAuthorization: DPoP " .. args[2] .. "\r\nDPoP: "
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return head .. proofs[i] .. "\r\n\r\n"
end
