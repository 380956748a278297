"""The Redis client layer against real redis-server processes: pipelining, deadlines, loss
and reconnect, NOSCRIPT, AUTH, and Redis Cluster routing with redirects."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis import RedisCluster, RedisServer
from wardgate.limits import remote
from wardgate.limits.gcra import Gcra
from wardgate.state import StoreError
from wardgate.state.client import StateClient
from wardgate.state.nodes import Node, key_slot, parse_url


def client_for(url: str | list[str], *, timeout_s: float = 0.05, cluster: bool = False,
               password: str | None = None) -> StateClient:
    urls = url if isinstance(url, list) else [url]
    nodes = [parse_url(u, cluster=cluster) for u in urls]
    if password is not None:
        nodes = [Node(n.host, n.port, n.tls, n.username, password, n.db) for n in nodes]
    c = StateClient(nodes, cluster=cluster, timeout_s=timeout_s, pool_size=2)
    c.register(remote.SCRIPT)
    return c


async def until_up(c: StateClient, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pools = list(c.pools.values())
        if pools and all(p.live for p in pools) and (not c.cluster or all(c.slots)):
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("state client did not connect")


async def call(c: StateClient, bound: Any, key: bytes) -> Any:
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    c.run(bound, key, lambda r: fut.done() or fut.set_result(r))
    return await asyncio.wait_for(fut, 5.0)  # a lost callback fails the test, never hangs it


async def test_concurrent_decisions_are_exact_and_share_writes(redis_server: RedisServer) -> None:
    c = client_for(redis_server.url, timeout_s=2.0)  # a loaded machine must not time them out
    await c.start()
    try:
        await until_up(c)
        writes = 0
        for pool in c.pools.values():
            for conn in pool.live:
                real = conn.transport.writelines

                def counting(data: Any, real: Any = real) -> None:
                    nonlocal writes
                    writes += 1
                    real(data)
                conn.transport.writelines = counting  # type: ignore[method-assign]
        bound = remote.bind(Gcra(10, 1.0, burst=4))
        replies = await asyncio.gather(*[call(c, bound, b"wg:rl:{t/a/k}") for _ in range(500)])
        assert sum(r[0] for r in replies) == 5          # burst + 1, exactly, however concurrent
        assert sorted(r[1] for r in replies if r[0]) == [0, 1, 2, 3, 4]
        assert all(r[2] > 0 for r in replies if not r[0])  # refused ones learn when to retry
        assert writes == 1  # 500 decisions of one loop turn left in one write
        ttl = int(redis_server.command("PTTL", "wg:rl:{t/a/k}")[1:-2])
        assert 0 < ttl <= 1000  # a bucket expires once rested: memory follows live keys
    finally:
        await c.stop()


async def test_a_slow_server_costs_at_most_the_timeout(redis_server: RedisServer) -> None:
    c = client_for(redis_server.url, timeout_s=0.05)
    await c.start()
    try:
        await until_up(c)
        bound = remote.bind(Gcra(1000, 1.0, burst=0))
        redis_server.pause(400)
        t0 = time.monotonic()
        replies = await asyncio.gather(*[call(c, bound, b"wg:rl:{t/s/%d}" % i) for i in range(20)])
        took = time.monotonic() - t0
        assert all(isinstance(r, StoreError) for r in replies)
        assert took < 0.2, took
        await asyncio.sleep(0.5)  # the paused replies arrive late, and are matched, not mixed up
        fresh = await call(c, bound, b"wg:rl:{t/s/new}")
        assert fresh[0] == 1 and fresh[1] == 0
    finally:
        await c.stop()


async def test_down_fails_fast_and_reconnects_when_back(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    r = RedisServer(tmp_path).start()
    # a long call timeout, so that "refused at once" is told from "refused at the timeout"
    # with a margin that a loaded machine does not eat
    c = client_for(r.url, timeout_s=2.0)
    await c.start()
    try:
        await until_up(c)
        bound = remote.bind(Gcra(1000, 1.0, burst=0))
        r.kill()
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        replies = await asyncio.gather(*[call(c, bound, b"wg:rl:{t/d/%d}" % i) for i in range(50)])
        assert all(isinstance(x, StoreError) for x in replies)
        assert time.monotonic() - t0 < 0.5  # no connection: refused at once, not after 2 s
        await asyncio.sleep(0.5)  # several reconnect attempts fail meanwhile
        r2 = RedisServer(tmp_path, port=r.port).start()
        try:
            t1 = time.monotonic()
            while True:
                got = await call(c, bound, b"wg:rl:{t/d/back}")
                if isinstance(got, list):
                    break
                assert time.monotonic() - t1 < 2.0, "not reconnected within 2 s"
                await asyncio.sleep(0.02)
            err = capsys.readouterr().err
            assert err.count('"event":"state_store_unavailable"') == 1  # once, not per attempt
            assert err.count('"event":"state_store_available"') == 2    # start, and back
        finally:
            r2.stop()
    finally:
        await c.stop()
        r.stop()


async def test_scripts_survive_a_script_flush(redis_server: RedisServer) -> None:
    c = client_for(redis_server.url)
    await c.start()
    try:
        await until_up(c)
        bound = remote.bind(Gcra(5, 1.0, burst=0))
        redis_server.command("SCRIPT", "FLUSH")
        got = await call(c, bound, b"wg:rl:{t/f/k}")
        assert got[0] == 1  # NOSCRIPT answered by sending the script itself
        assert (await call(c, bound, b"wg:rl:{t/f/k}"))[0] == 0
    finally:
        await c.stop()


async def test_auth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = RedisServer(tmp_path).start()
    r.command("CONFIG", "SET", "requirepass", "s3cret-pass")
    good, bad = client_for(r.url, password="s3cret-pass"), client_for(r.url, password="wrong-one")
    await good.start()
    await bad.start()
    try:
        await until_up(good)
        bound = remote.bind(Gcra(5, 1.0, burst=0))
        assert (await call(good, bound, b"wg:rl:{t/auth/k}"))[0] == 1
        await asyncio.sleep(0.2)
        assert isinstance(await call(bad, bound, b"wg:rl:{t/auth/k}"), StoreError)
        err = capsys.readouterr().err
        assert "refused the handshake" in err and "wrong-one" not in err and "s3cret" not in err
    finally:
        await good.stop()
        await bad.stop()
        r.stop()


async def test_cluster_routes_by_slot_and_follows_redirects(redis_cluster: RedisCluster) -> None:
    c = client_for(redis_cluster.urls[:1], cluster=True)  # one seed: the rest is discovered
    await c.start()
    try:
        await until_up(c)
        assert len(c.pools) == 3
        keys = [b"wg:rl:{t/c/%d}" % i for i in range(60)]
        for k in keys[:5]:
            real = int(redis_cluster.nodes[0].command("CLUSTER", "KEYSLOT", k.decode())[1:-2])
            assert key_slot(k) == real
        bound = remote.bind(Gcra(10, 1.0, burst=1))
        first = await asyncio.gather(*[call(c, bound, k) for k in keys])
        assert all(r[0] == 1 for r in first)
        owners = {c.slots[key_slot(k)].node.port for k in keys}  # type: ignore[union-attr]
        assert len(owners) == 3  # the buckets really are spread over the masters
        # a stale slot map (every slot on one node): MOVED redirects still find each bucket
        c.slots = [c.slots[0]] * len(c.slots)
        c._slot_cache.clear()
        again = await asyncio.gather(*[call(c, bound, k) for k in keys])
        assert all(r[0] == 1 for r in again)   # burst 1: the second request passes...
        third = await asyncio.gather(*[call(c, bound, k) for k in keys])
        assert all(r[0] == 0 for r in third)   # ...and the third is refused, on its own node
    finally:
        await c.stop()


async def test_rediss_verifies_the_server_certificate(tmp_path: Path) -> None:
    import subprocess

    import trustme

    from tests.support.gateway import free_port

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--dir", str(tmp_path),
                             "--tls-cert-file", str(cert_path), "--tls-key-file", str(key_path),
                             "--tls-ca-cert-file", str(ca_path), "--tls-auth-clients", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"rediss://127.0.0.1:{port}/0"
        good = StateClient([parse_url(url)], cluster=False, timeout_s=0.2, pool_size=1,
                           ca_file=str(ca_path))
        other_ca = tmp_path / "other.pem"
        trustme.CA().cert_pem.write_to_path(str(other_ca))
        bad = StateClient([parse_url(url)], cluster=False, timeout_s=0.2, pool_size=1,
                          ca_file=str(other_ca))
        for c in (good, bad):
            c.register(remote.SCRIPT)
            await c.start()
        try:
            await until_up(good)
            bound = remote.bind(Gcra(5, 1.0, burst=0))
            assert (await call(good, bound, b"wg:rl:{t/tls/k}"))[0] == 1
            assert isinstance(await call(bad, bound, b"wg:rl:{t/tls/k}"), StoreError)
        finally:
            await good.stop()
            await bad.stop()
    finally:
        proc.terminate()
        proc.wait(5)
