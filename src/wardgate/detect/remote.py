"""Token observations and token verdicts shared by every worker and gateway, on Redis (the
one client layer, wardgate.state). Off the request path: called from the detector's tick.

Per token (`wg:dt:{JTI}`, one hash, so one Cluster slot) the script keeps the last reported
network|user-agent of the token over all gateways, the switch score within the replay window
(network change 1, user-agent change 2, as the local signal counts them), the networks seen
within the window, and the verdict's expiry. A worker reports a token when its own view of it
changes, and at most once a second otherwise, so an owner and a thief alternating on two
workers (or two gateways) interleave in the shared sequence. Every reply carries the shared
score, the live networks and the verdict's time left: a worker that did not see the replay
itself learns the verdict and enforces it. The server's TIME is the clock.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from wardgate.detect.events import Event
from wardgate.detect.table import Bounded
from wardgate.detect.verdict import KEY_JTI, Finding
from wardgate.state import BoundScript, Script

if TYPE_CHECKING:
    from wardgate.config.detect import DetectionConfig
    from wardgate.detect.adapter import DetectionRuntime
    from wardgate.state.client import StateClient

# ARGV: [1] "network|ua" or "" (a verdict only), [2] window ms, [3] verdict ms (0: none),
# [4] the verdict's kind. Returns {switch score, live networks, verdict ms left, kind}.
TOKEN_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur, window, flag_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'last', 'score', 'start', 'until', 'kind')
local last, score, start = h[1], tonumber(h[2]) or 0, tonumber(h[3]) or now
local untl, kind = tonumber(h[4]) or 0, h[5] or ''
if now - start > window then score = 0; start = now end
local nets, seen = 0, false
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, 1, 2) == 'n:' then
    if now - tonumber(all[i + 1]) <= window then
      nets = nets + 1
      if cur ~= '' and f == 'n:' .. string.match(cur, '^(.-)|') then seen = true end
    else
      redis.call('HDEL', KEYS[1], f)
    end
  end
end
if cur ~= '' then
  local net, ua = string.match(cur, '^(.-)|(.*)$')
  if last then
    local lnet, lua_ = string.match(last, '^(.-)|(.*)$')
    if lnet ~= net then score = score + 1 end
    if lua_ ~= ua then score = score + 2 end
  end
  redis.call('HSET', KEYS[1], 'last', cur, 'score', score, 'start', start)
  if seen or nets < 64 then
    redis.call('HSET', KEYS[1], 'n:' .. net, now)
    if not seen then nets = nets + 1 end
  end
end
if flag_ms > 0 and now + flag_ms > untl then
  untl = now + flag_ms
  kind = ARGV[4]
  redis.call('HSET', KEYS[1], 'until', untl, 'kind', kind)
end
local left = untl - now
if left < 0 then left = 0 end
redis.call('PEXPIRE', KEYS[1], math.max(window, left) + 1000)
return {score, nets, left, kind}
"""

SCRIPT = Script(TOKEN_LUA)
_REFRESH_S = 1.0  # a token's unchanged view is reported at most this often per worker


def token_key(jti: str) -> bytes:
    raw = jti.encode("utf-8", "surrogatepass")
    if b"{" in raw or b"}" in raw or len(raw) > 128:
        raw = b"#" + hashlib.sha256(raw).hexdigest()[:32].encode()
    return b"wg:dt:{" + raw + b"}"


class SharedTokens:
    def __init__(self, client: StateClient, cfg: DetectionConfig) -> None:
        self.client = client
        self.cfg = cfg
        client.register(SCRIPT)
        self._window_ms = int(cfg.replay.window_s * 1000)
        self._deny_ms = int(cfg.deny_s * 1000)
        self._bound: dict[tuple[str, int, str], BoundScript] = {}
        self._sent: Bounded[str, tuple[str, float]] = Bounded(cfg.max_keys)
        self.errors = 0

    def _script(self, cur: str, flag_ms: int, kind: str) -> BoundScript:
        k = (cur, flag_ms, kind)
        b = self._bound.get(k)
        if b is None:
            if len(self._bound) >= 4096:
                self._bound.clear()
            b = self._bound[k] = SCRIPT.bind(cur, self._window_ms, flag_ms, kind)
        return b

    def observe(self, ev: Event, rt: DetectionRuntime) -> None:
        """Report an accepted token's network and user agent (when they changed, or a second
        has passed); the reply may conclude a replay this worker did not see."""
        jti = ev.jti
        if jti is None or ev.outcome != "ok" or not self.cfg.replay.enabled \
                or rt.detector.exempt(ev, network=True):
            return
        cur = f"{ev.network}|{ev.ua}"
        sent = self._sent.get(jti)
        if sent is not None and sent[0] == cur and ev.time - sent[1] < _REFRESH_S:
            return
        self._sent.put(jti, (cur, ev.time))
        self.client.run(self._script(cur, 0, ""), token_key(jti),
                        lambda reply: self._reply(reply, ev, rt))

    def flag(self, jti: str, kind: str) -> None:
        """Share a verdict on a token: every worker that sees it next enforces it too."""
        self.client.run(self._script("", self._deny_ms, kind), token_key(jti),
                        lambda reply: None)

    def _reply(self, reply: Any, ev: Event, rt: DetectionRuntime) -> None:
        if type(reply) is not list or len(reply) != 4 or not all(
                type(x) is int for x in reply[:3]):
            self.errors += 1  # a StoreError or ReplyError: the local view still decides
            return
        score, nets, left_ms, kind = reply
        det = rt.detector
        now = self.client.loop.time()
        jti = ev.jti
        assert jti is not None
        if left_ms > 0 and not self.cfg.dry_run:
            held = det.flags.jti.get(jti)
            if held is None or held.until < now + left_ms / 1000 - 1.0:
                k = kind.decode() if isinstance(kind, bytes) else str(kind)
                det.flags.set(KEY_JTI, jti, now + left_ms / 1000,
                              Finding(k or "token_replay", 1.0, KEY_JTI, jti, {}, "shared"))
        cfg = self.cfg.replay
        ratio = max(score / cfg.switch_score, nets / cfg.max_networks)
        if ratio < 1.0:
            return
        found = Finding(
            "token_replay", ratio, KEY_JTI, jti,
            {"switch_score": score, "networks": nets, "window_s": cfg.window_s, "shared": True},
            f"one token, switches of network or user agent over every gateway scoring "
            f"{score} against {cfg.switch_score:g} within {cfg.window_s:g} s, {nets} networks")
        v = det.conclude(found, ev)
        if v is not None:
            rt.emit(v, ev)
            self.flag(jti, v.kind)
