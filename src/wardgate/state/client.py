"""The gateway's one Redis client layer: a small pool of pipelined connections per node, kept
connected in the background with back-off, a Redis Cluster slot map with MOVED/ASK
redirects, and scripts loaded on every connection.

Nothing on the request path awaits here: `run()` queues a script call and returns; its
callback gets the reply, or a `StoreError` at once when no connection is up (so a request
never waits for a reconnect) or after `timeout_ms` when the server is slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from typing import Any

from wardgate import logs
from wardgate.state.connection import DOWN, Callback, RedisConnection, StoreError
from wardgate.state.nodes import SLOTS, Node, key_slot
from wardgate.state.resp import ReplyError, encode
from wardgate.state.script import BoundScript, Script

_BACKOFF_MIN_S, _BACKOFF_MAX_S = 0.05, 2.0
_MAX_REDIRECTS = 3


class _Pool:
    """`size` connections to one node, each slot kept alive by its own task."""

    def __init__(self, client: StateClient, node: Node, size: int) -> None:
        self.client = client
        self.node = node
        self.size = size
        self.live: list[RedisConnection] = []
        self.rr = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.up: bool | None = None  # None until the first attempt: the first outcome is logged

    def start(self) -> None:
        loop = self.client.loop
        self.tasks = [loop.create_task(self._keep()) for _ in range(self.size)]

    def pick(self) -> RedisConnection | None:
        """The connection whose write of this loop turn is still open, else the next one:
        one turn's commands share one write (and one read of replies), turns rotate."""
        live = self.live
        if not live:
            return None
        conn = live[self.rr % len(live)]
        if conn.flush_scheduled:
            return conn
        self.rr += 1
        return live[self.rr % len(live)]

    async def _keep(self) -> None:
        delay = _BACKOFF_MIN_S
        while True:
            try:
                conn, lost = await self._open()
            except (OSError, TimeoutError, StoreError, ssl.SSLError) as exc:
                self._transition(False, f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, _BACKOFF_MAX_S)
                continue
            delay = _BACKOFF_MIN_S
            self.live.append(conn)
            self._transition(True, "")
            await lost
            with contextlib.suppress(ValueError):
                self.live.remove(conn)
            if not self.live:
                self._transition(False, "connection lost")

    async def _open(self) -> tuple[RedisConnection, asyncio.Future[None]]:
        c = self.client
        loop = c.loop
        lost: asyncio.Future[None] = loop.create_future()

        def on_lost(_: RedisConnection) -> None:
            if not lost.done():
                lost.set_result(None)

        node = self.node
        ctx = c.ssl_context if node.tls else None
        _, conn = await asyncio.wait_for(loop.create_connection(
            lambda: RedisConnection(loop, on_lost, c.stuck_s), node.host, node.port, ssl=ctx,
            server_hostname=node.host if ctx else None), c.connect_timeout_s)
        try:
            await self._handshake(conn)
        except BaseException:
            conn.abort()
            raise
        return conn, lost

    async def _handshake(self, conn: RedisConnection) -> None:
        node, c = self.node, self.client
        cmds: list[bytes] = []
        if node.password is not None:
            cmds.append(encode(b"AUTH", node.username, node.password) if node.username
                        else encode(b"AUTH", node.password))
        if node.db:
            cmds.append(encode(b"SELECT", node.db))
        cmds += [s.load_command for s in c.scripts]
        cmds.append(encode(b"PING"))
        futs = [await_reply(conn, cmd, c.loop.time() + c.connect_timeout_s) for cmd in cmds]
        for fut in futs:
            reply = await fut
            if isinstance(reply, StoreError):
                raise reply
            if isinstance(reply, ReplyError):
                # AUTH or SELECT refused: say which, without the credentials
                raise StoreError(f"server refused the handshake: {reply.kind}")
        conn.ready = True

    def _transition(self, up: bool, reason: str) -> None:
        if self.up is up:
            return  # logged once per change, not once per attempt or request
        self.up = up
        if up:
            logs.event("state_store_available", node=self.node.address)
        else:
            logs.event("state_store_unavailable", level="warning", node=self.node.address,
                       reason=reason)

    def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for conn in self.live:
            conn.abort()
        self.live = []


def _reply_future(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Future[Any], Callback]:
    """A future and the callback that resolves it with the reply (or the StoreError)."""
    fut: asyncio.Future[Any] = loop.create_future()

    def done(reply: Any) -> None:
        if not fut.done():
            fut.set_result(reply)

    return fut, done


def await_reply(conn: RedisConnection, cmd: bytes, deadline: float) -> asyncio.Future[Any]:
    """A command's reply as a future: for start-up and management calls, not the hot path."""
    fut, done = _reply_future(conn.loop)
    conn.call(cmd, done, deadline)
    return fut


class StateClient:
    def __init__(self, nodes: list[Node], *, cluster: bool, timeout_s: float, pool_size: int,
                 ca_file: str | None = None) -> None:
        self.nodes = nodes
        self.cluster = cluster
        self.timeout_s = timeout_s
        self.pool_size = pool_size
        self.connect_timeout_s = max(1.0, timeout_s * 4)
        self.stuck_s = max(1.0, timeout_s * 20)
        self.scripts: list[Script] = []
        self.ssl_context: ssl.SSLContext | None = None
        if any(n.tls for n in nodes):
            self.ssl_context = ssl.create_default_context(cafile=ca_file)
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self.pools: dict[tuple[str, int], _Pool] = {}
        self.pool: _Pool | None = None          # single node
        self.slots: list[_Pool | None] = []     # Cluster: slot -> the master's pool
        self._slot_cache: dict[bytes, int] = {}
        self._refresh: asyncio.Task[bool] | None = None
        self._refresh_task: asyncio.Task[None] | None = None

    def register(self, script: Script) -> None:
        """Scripts are loaded on every connection as it opens; register before start()."""
        if script not in self.scripts:
            self.scripts.append(script)

    def _pool_for(self, node: Node) -> _Pool:
        key = (node.host, node.port)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = _Pool(self, node, self.pool_size)
            if self.loop is not None:
                pool.start()
        return pool

    async def start(self) -> None:
        """Begin connecting; never waits for Redis (a gateway starts, and serves by its
        store-error policy, while Redis is down)."""
        self.loop = asyncio.get_running_loop()
        if self.cluster:
            self.slots = [None] * SLOTS
            for n in self.nodes:
                self._pool_for(n)  # started as they are made, now that the loop is known
            self._refresh_task = self.loop.create_task(self._refresh_loop())
        else:
            self.pool = self._pool_for(self.nodes[0])

    async def stop(self) -> None:
        for t in (self._refresh_task, self._refresh):
            if t is not None:
                t.cancel()
        for p in self.pools.values():
            p.stop()

    # -- the request path ----------------------------------------------------------------------
    def run(self, bound: BoundScript, key: bytes, cb: Callback) -> None:
        """Queue a script call on `key`; `cb` receives the reply or a StoreError."""
        if not self.cluster:
            conn = self.pool.pick()  # type: ignore[union-attr]
            if conn is None:
                cb(DOWN)
                return
            conn.call(bound.command(key), cb, self.loop.time() + self.timeout_s, bound, key)
            return
        _Redirecting(self, bound, key, cb).send(self._slot(key), None, False)

    def call(self, key: bytes, cmd: bytes, cb: Callback) -> None:
        """Queue one plain command about `key` (already RESP-encoded, `resp.encode`); `cb`
        receives the reply or a StoreError. For management and feed reads, not scripts."""
        if not self.cluster:
            conn = self.pool.pick()  # type: ignore[union-attr]
            if conn is None:
                cb(DOWN)
                return
            conn.call(cmd, cb, self.loop.time() + self.timeout_s)
            return
        _Redirecting(self, _Plain(cmd), key, cb).send(self._slot(key), None, False)

    # -- awaitable forms, for background tasks (feeds, relays), not the request path -----------
    def call_future(self, key: bytes, cmd: bytes) -> asyncio.Future[Any]:
        """`call`, its reply (or the StoreError) as a future."""
        fut, done = _reply_future(asyncio.get_running_loop())
        self.call(key, cmd, done)
        return fut

    def run_future(self, bound: BoundScript, key: bytes) -> asyncio.Future[Any]:
        """`run`, its reply (or the StoreError) as a future."""
        fut, done = _reply_future(asyncio.get_running_loop())
        self.run(bound, key, done)
        return fut

    def _slot(self, key: bytes) -> int:
        cache = self._slot_cache
        slot = cache.get(key)
        if slot is None:
            slot = key_slot(key)
            if len(cache) >= 4096:
                cache.clear()
            cache[key] = slot
        return slot

    # -- Redis Cluster -------------------------------------------------------------------------
    def moved(self, slot: int, address: str) -> _Pool | None:
        """A MOVED redirect: the slot lives elsewhere now; remap it and refresh the whole map."""
        pool = self._pool_at(address)
        if pool is not None:
            self.slots[slot] = pool
        if self._refresh is None or self._refresh.done():
            self._refresh = self.loop.create_task(self.refresh_slots())
        return pool

    def _pool_at(self, address: str) -> _Pool | None:
        host, _, port = address.rpartition(":")
        if not port.isdigit() or not host:
            return None
        return self._pool_for(self.nodes[0].with_address(host.strip("[]"), int(port)))

    async def _refresh_loop(self) -> None:
        while True:
            ok = await self.refresh_slots()
            await asyncio.sleep(30.0 if ok else 0.2)

    async def refresh_slots(self) -> bool:
        """Read CLUSTER SLOTS from any node that answers; True when the map was replaced."""
        for pool in list(self.pools.values()):
            conn = pool.pick()
            if conn is None:
                continue
            reply = await await_reply(conn, encode(b"CLUSTER", b"SLOTS"),
                                      self.loop.time() + self.connect_timeout_s)
            if not isinstance(reply, list):
                continue
            slots: list[_Pool | None] = [None] * SLOTS
            for entry in reply:
                try:
                    start, end, master = int(entry[0]), int(entry[1]), entry[2]
                    host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
                    node = self.nodes[0].with_address(host or pool.node.host, int(master[1]))
                except (IndexError, TypeError, ValueError, UnicodeDecodeError):
                    continue
                target = self._pool_for(node)
                for s in range(start, min(end, SLOTS - 1) + 1):
                    slots[s] = target
            self.slots = slots
            return True
        return False


class _Plain:
    """A fixed command in the shape `_Redirecting` sends (it is never a script: no NOSCRIPT)."""

    __slots__ = ("cmd",)

    def __init__(self, cmd: bytes) -> None:
        self.cmd = cmd

    def command(self, key: bytes) -> bytes:
        return self.cmd


class _Redirecting:
    """One Cluster call: follows up to three MOVED/ASK redirects before giving up."""

    __slots__ = ("client", "bound", "key", "cb", "hops")

    def __init__(self, client: StateClient, bound: BoundScript | _Plain, key: bytes,
                 cb: Callback) -> None:
        self.client = client
        self.bound = bound
        self.key = key
        self.cb = cb
        self.hops = 0

    def send(self, slot: int, pool: _Pool | None, asking: bool) -> None:
        c = self.client
        if pool is None:
            pool = c.slots[slot] if c.slots else None
            if pool is None:  # slot map not known yet: any live node redirects us
                pool = next((p for p in c.pools.values() if p.live), None)
        conn = pool.pick() if pool is not None else None
        if conn is None:
            self.cb(DOWN)
            return
        deadline = c.loop.time() + c.timeout_s
        if asking:
            conn.call(b"*1\r\n$6\r\nASKING\r\n", None, deadline)
        bound = self.bound
        conn.call(bound.command(self.key), self.done, deadline,
                  bound if type(bound) is BoundScript else None, self.key)

    def done(self, reply: Any) -> None:
        if type(reply) is ReplyError:
            kind = reply.kind
            if kind in ("MOVED", "ASK") and self.hops < _MAX_REDIRECTS:
                self.hops += 1
                parts = reply.message.split(" ")
                if len(parts) == 3 and parts[1].isdigit():
                    slot = int(parts[1])
                    if kind == "MOVED":
                        self.send(slot, self.client.moved(slot, parts[2]), False)
                    else:
                        self.send(slot, self.client._pool_at(parts[2]), True)
                    return
        self.cb(reply)
