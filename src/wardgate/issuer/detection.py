"""The issuer's adapter of login detection (wardgate.detect.login): fingerprints, the refusal
of a flagged network, and what a verdict does (a `detection` log line, a `detection` audit
row, and with `state.redis_url` an entry on the stream the gateways read).

Called inline by `Issuer.check_password` and the refresh grant: a password check costs an
argon2 hash (tens of milliseconds), the signals a few dict operations, so they need no buffer
of their own; only a verdict's audit row is written by a task (verdicts are rare: one per
signal and key per cooldown). The username fingerprint key is a database secret (stable over
restarts and issuer processes, so log lines correlate); the password tag key is made at start
and lives in this process's memory only, with the tags themselves (docs/security.md explains
why).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from wardgate import logs
from wardgate.detect.events import network_of
from wardgate.detect.login import KEY_FAMILY, Attempt, LoginDetector
from wardgate.detect.verdict import Finding, Verdict
from wardgate.issuer import audit
from wardgate.issuer.errors import LoginRefused, SlowDown
from wardgate.state.resp import encode

if TYPE_CHECKING:
    from wardgate.config.issuer import IssuerConfig
    from wardgate.issuer.db import Database
    from wardgate.state.client import StateClient

RECENT = 256  # verdicts kept for `recent()` (the issuer has no admin listener of its own)
_DENIED = "login attempts from this network are refused for a while (suspected {kind})"


class IssuerDetection:
    def __init__(self, cfg: IssuerConfig, clock: Any = time.monotonic) -> None:
        dcfg = cfg.detection
        assert dcfg is not None
        self.cfg = dcfg
        self.clock = clock
        self.detector = LoginDetector(dcfg)
        # memory only: never logged, persisted or shared; a new one every start
        self._tag_key = secrets.token_bytes(32)
        self._fp_key = b""
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.client: StateClient | None = None
        self._stream = dcfg.stream_key.encode()
        self.published = self.publish_errors = 0
        self._swept = 0.0
        self.db: Database | None = None
        self._writes: set[asyncio.Task[None]] = set()
        if dcfg.publish and cfg.state.urls():
            from wardgate.state import client_from_config

            self.client = client_from_config(cfg.state, pool_size=1)

    async def start(self, fingerprint_key: bytes, db: Database | None = None) -> None:
        self._fp_key = fingerprint_key
        self.db = db
        if self.client is not None:
            await self.client.start()

    async def stop(self) -> None:
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self.client is not None:
            await self.client.stop()

    # -- fingerprints --------------------------------------------------------------------------
    def user_fp(self, username: str) -> str:
        """12 hex digits of a keyed hash of the casefolded username: tells usernames apart in
        the log, not what they are."""
        return hmac.new(self._fp_key, username.casefold().encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()[:12]

    def _tag(self, password: str) -> bytes:
        return hmac.new(self._tag_key, password.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).digest()[:8]

    # -- the password check's two calls --------------------------------------------------------
    def refuse(self, address: str) -> None:
        """Before the password is checked: a flagged network gets the policy's answer."""
        det = self.detector
        if not det.flags.net or det.cfg.dry_run or det.cfg.action == "log":
            return
        now = self.clock()
        f = det.flagged(network_of(address), now)
        if f is None or det.allowed(address):
            return
        if det.cfg.action == "slow_down":
            raise SlowDown(f.until - now)
        raise LoginRefused(_DENIED.format(kind=f.kind.replace("_", " ")), f.until - now)

    def attempt(self, address: str, username: str, password: str | None, ok: bool,
                route: str) -> list[Verdict]:
        """After the check (`password` None: throttled, never checked): feed the signals;
        act on what they conclude."""
        now = self.clock()
        tag = self._tag(password) if password is not None and not ok \
            and self.cfg.spraying.password_tags else b""
        verdicts = self.detector.observe(Attempt(now, address, network_of(address),
                                                 self.user_fp(username), ok, tag, route))
        for v in verdicts:
            self.emit(v)
        if now >= self._swept + 10.0:
            self._swept = now
            self.detector.sweep(now)
        return verdicts

    def refresh_reuse(self, address: str, client_id: str, family: str,
                      user_id: int | None) -> Verdict:
        """A reused refresh token (its family is revoked by the grant): reported always."""
        now = self.clock()
        f = Finding("refresh_reuse", 1.0, KEY_FAMILY, hashlib.sha256(family.encode())
                    .hexdigest()[:16],
                    {"client_id": client_id, "network": network_of(address),
                     "user": None if user_id is None else self.user_fp(str(user_id))},
                    "a rotated refresh token was presented again; its family is revoked")
        v = Verdict(f, "revoke", False, now, "/token", address, None, None)
        self.emit(v)
        return v

    # -- a verdict -----------------------------------------------------------------------------
    def emit(self, v: Verdict) -> dict[str, Any]:
        record = v.record(time.time())
        record["source"] = "issuer"
        record["network"] = network_of(v.client)
        logs.event("detection", level="warning", detected_at=record["time"],
                   **{k: val for k, val in record.items() if k != "time"})
        self.recent.appendleft(record)
        if self.db is not None:  # the audit table: the issuer's durable record of verdicts
            task = asyncio.get_running_loop().create_task(self._audit(record))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)
        if self.client is not None:
            raw = json.dumps(record, separators=(",", ":"), default=str)
            self.client.call(self._stream, encode(
                b"XADD", self._stream, b"MAXLEN", b"~", self.cfg.stream_maxlen, b"*",
                b"d", raw), self._published)
        return record

    async def _audit(self, record: dict[str, Any]) -> None:
        assert self.db is not None
        try:
            async with self.db.begin() as conn:
                await audit.record(conn, int(record["time"]), "detection",
                                   address=record["client"], kind=record["kind"],
                                   score=record["score"], action=record["action"],
                                   dry_run=record["dry_run"], key=record["key"],
                                   route=record["route"], features=record["features"])
        except Exception as exc:  # noqa: BLE001 - the log line is already out
            logs.event("detection_audit_failed", level="warning",
                       error=f"{type(exc).__name__}: {exc}"[:200])

    def _published(self, reply: Any) -> None:
        if isinstance(reply, bytes):
            self.published += 1
        else:
            self.publish_errors += 1
            logs.event("detection_publish_failed", level="warning",
                       error=str(getattr(reply, "message", reply))[:200])
