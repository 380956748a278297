"""The data plane's Python cost per request, in-process, without sockets.

Drives a real `ClientProtocol` (the worker's code, unchanged) with fake transports: a client
read of one keep-alive GET, the upstream request written to a pooled connection, the upstream's
answer fed to that connection's `data_received`, the response written to the client. What is
left out is exactly the kernel (syscalls, loopback delivery) and the event loop's own work, so
this is the part of a request that wardgate's Python code decides.

    .venv/bin/python bench/hotpath.py [--requests 200000] [--route plain|jwt|jwt-distinct|jwt-forged]
                                      [--connections 64] [--profile]
                                      [--tracing [propagate|export]] [--inbound-trace]

By default 64 connections are served in turn, as under make bench's `wrk -c64`: that is what
the interpreter sees live (many objects of each kind alive at once; with one connection, a
class whose instances fell back to a dict under load measured as fast as a slotted one).

It also runs a minimal reference (httptools parse + one header join each way, no checks) so
the figure can be read against the floor of any httptools-based proxy.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httptools
import uvloop
import yaml

from wardgate.config import load_gateway
from wardgate.gateway import output
from wardgate.gateway.accesslog import AccessLog
from wardgate.gateway.protocol import ClientProtocol
from wardgate.gateway.runtime import Runtime
from wardgate.gateway.upstream.connection import UpstreamConnection
from wardgate.gateway.worker import WorkerState

REQUEST = (b"GET /plain/x?q=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n"
           b"Accept: */*\r\n\r\n")
CACHE = Path(__file__).parent / "results" / "cache"  # make bench's key set and tokens
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 06:00:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")


class FakeTransport:
    """The few transport methods the data plane calls; writes are counted, not sent."""

    def __init__(self) -> None:
        self.writes = 0
        self.last: Any = None
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.last = data

    def writelines(self, parts: Any) -> None:
        self.writes += 1
        self.last = parts

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


TRACEPARENT = b"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"


def build(route: str, connections: int = 1, rate_limit: bool = False, tracing: str | None = None,
          inbound_trace: bool = False, metrics: bool = False, detection: bool = False
          ) -> tuple[list[ClientProtocol], list[UpstreamConnection], bytes]:
    tmp = Path(tempfile.mkdtemp(prefix="wardgate-hotpath-"))
    cfg = {
        "listen": "127.0.0.1:8080", "workers": 1, "access_log": {"enabled": False},
        "upstreams": [{"name": "up", "targets": ["http://127.0.0.1:9"]}],
        "routes": [{"name": "plain", "match": {"path_prefix": "/plain"}, "upstream": "up",
                    "auth": "none"}],
    }
    request = REQUEST
    if route == "dpop":  # a DPoP-bound token (cached) and a fresh proof per request
        cfg["providers"] = [{"name": "bench", "issuer": "http://127.0.0.1/bench-issuer",
                             "audiences": ["bench-api"], "algorithms": ["RS256"],
                             "jwks_file": str(CACHE / "jwks.json")}]
        cfg["routes"].append({"name": "dpop", "match": {"path_prefix": "/dpop"},
                              "upstream": "up",
                              "auth": {"providers": ["bench"], "dpop": "required",
                                       "require": {"scopes": ["bench:read"]}}})
        cfg["dpop"] = {"algorithms": ["ES256"], "max_age_s": 3600, "max_future_s": 60,
                       "replay_cache_entries": 10_000_000}
    if route == "jwt":
        # One token repeated (the verified-token cache hits), as make bench's jwt-same scenario.
        token = token_file().read_bytes().split(b"\n", 1)[0]
        cfg["providers"] = [{"name": "bench", "issuer": "http://127.0.0.1/bench-issuer",
                             "audiences": ["bench-api"], "algorithms": ["RS256"],
                             "jwks_file": str(CACHE / "jwks.json")}]
        cfg["routes"].append({"name": "jwt", "match": {"path_prefix": "/jwt"}, "upstream": "up",
                              "auth": {"providers": ["bench"],
                                       "require": {"scopes": ["bench:read"]}}})
        request = (b"GET /jwt HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer "
                   + token + b"\r\n\r\n")
    if rate_limit:  # a local limit that is never reached, on the measured route
        cfg["routes"][-1]["rate_limits"] = [{"name": "l", "key": "sub" if route == "jwt" else "ip",
                                             "rate": "10000000/s"}]
    if detection:  # as bench/detect_bench.py: every auth route watched with deny, never fired
        cfg["detection"] = {"action": "deny", "rate": {"min_requests": 1_000_000_000}}
        if route not in ("jwt", "dpop"):  # something for detection to watch: it is global
            cfg["providers"] = [{"name": "bench", "issuer": "http://127.0.0.1/bench-issuer",
                                 "audiences": ["bench-api"], "algorithms": ["RS256"],
                                 "jwks_file": str(CACHE / "jwks.json")}]
            cfg["routes"].append({"name": "watched", "match": {"path_prefix": "/watched"},
                                  "upstream": "up", "auth": {"providers": ["bench"]}})
    if metrics:  # the admin section turns metrics on; the slots are mapped as a worker does
        cfg["admin"] = {"listen": "127.0.0.1:8081"}
    if tracing == "propagate":  # traceparent upstream and trace_id, nothing exported
        cfg["tracing"] = {}
    elif tracing == "export":  # every request sampled and its span queued (the exporter's
        # task never runs here: the rounds empty the queue, as its timer would)
        cfg["tracing"] = {"otlp_endpoint": "http://127.0.0.1:9/v1/traces"}
    if inbound_trace:  # the client sends a traceparent to continue
        request = request.replace(b"\r\n\r\n", b"\r\n" + TRACEPARENT[:-2] + b"\r\n\r\n")
    (tmp / "g.yaml").write_text(yaml.safe_dump(cfg))
    gcfg = load_gateway(str(tmp / "g.yaml"))
    loop = uvloop.new_event_loop()
    rt = Runtime(gcfg)
    if rt.metrics is not None:
        rt.metrics.registry.freeze()
        rt.metrics.bind()
    loop.run_until_complete(rt.start())
    state = WorkerState(rt, loop, AccessLog("-", False, enabled=False))
    clients, conns = [], []
    target = rt.clusters["up"].targets[0]
    target._loop = loop
    for _ in range(connections):
        client = ClientProtocol(state, "http")
        client.connection_made(FakeTransport())
        clients.append(client)
        conn = UpstreamConnection(target)  # one pooled upstream connection per client
        conn.connection_made(FakeTransport())
        target.open.add(conn)
        target.idle.append(conn)
        conns.append(conn)
    return clients, conns, request


def dpop_requests(count: int) -> list[bytes]:
    """`count` requests of one client, each with a new DPoP proof (bench/dpop_bench.py)."""
    import dpop_bench
    import tokens as bench_tokens

    client = dpop_bench.Client()
    token = dpop_bench.bound_token(bench_tokens.load_or_create_key(CACHE), client.jkt)
    ath, now = dpop_bench.ath_of(token), int(time.time())
    head = b"GET /dpop HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: DPoP " + token.encode()
    return [head + b"\r\nDPoP: " + client.proof("GET", "http://127.0.0.1:8080/dpop", ath,
                                                 now).encode() + b"\r\n\r\n"
            for _ in range(count)]


def token_file() -> Path:
    """make bench's token pool (tokens-100000.txt), or the largest one a shorter run left."""
    pools = sorted((p for p in CACHE.glob("tokens-*.txt") if p.stem.split("-")[1].isdigit()
                    and not p.stem.endswith("forged")), key=lambda p: int(p.stem.split("-")[1]))
    if not pools:
        raise SystemExit("no token pool in bench/results/cache: run `make bench` first")
    return pools[-1]


def distinct_requests(count: int, forged: bool = False) -> list[bytes]:
    """`count` requests, each with a different token (make bench's pool), for jwt-distinct;
    with `forged`, each token's signature tampered (jwt-forged: every request refused)."""
    tokens = token_file().read_bytes().split()[:count]
    if forged:
        from tokens import tampered

        tokens = [tampered(t.decode()).encode() for t in tokens]
    return [b"GET /jwt HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAuthorization: Bearer " + t
            + b"\r\n\r\n" for t in tokens]


class _Iteration:
    """Stands in for the worker's loop in output.BATCH: the flush is called by hand after each
    request, as the end of an event-loop iteration would."""

    def call_soon(self, callback: Any) -> None:
        pass


def run_wardgate(n: int, route: str, connections: int = 1, rate_limit: bool = False,
                 tracing: str | None = None, inbound_trace: bool = False,
                 metrics: bool = False, detection: bool = False) -> float:
    """CPU µs per request. With several connections, each round is what one event-loop
    iteration of the worker sees under `wrk -c<connections>`: a request read on every
    connection, then every upstream answer; so `n` is rounded up to whole rounds."""
    forged = route == "jwt-forged"
    clients, conns, request = build("jwt" if route in ("jwt-distinct", "jwt-forged") else route,
                                    connections, rate_limit, tracing, inbound_trace, metrics,
                                    detection)
    if route == "dpop":  # every proof is good once: make one for each request to be sent
        n = max(n, connections)
        pool_dpop = dpop_requests(-(-n // connections) * connections
                                  + -(-2000 // connections) * connections)
    output.BATCH.bind(_Iteration())  # type: ignore[arg-type]
    spans = clients[0].state.runtime.tracer
    if spans is not None and spans.exporting:
        queue = spans.queue

        def flush() -> None:
            output.BATCH.flush()
            queue.clear()  # what the exporter takes off the queue
    else:
        flush = output.BATCH.flush
    det = clients[0].state.runtime.detection
    if det is not None:  # the detector's tick, in the same process, as its timer would run it
        loop_time, batch_flush = clients[0].loop.time, flush

        def flush() -> None:
            batch_flush()
            if len(det.buf) >= TICK_EVERY:
                t0 = time.process_time()
                while det.buf:  # slices, as DetectionRuntime._run does
                    det.tick(loop_time())
                TICK[0] += time.process_time() - t0
    # jwt-distinct: a pool twice the verified-token cache, cycled: every request a miss
    # jwt-forged: the same pool with bad signatures: each answered 401, nothing forwarded
    # dpop: a fresh proof for every request (a proof is good once)
    pool = (distinct_requests(20_000, forged) if route in ("jwt-distinct", "jwt-forged")
            else pool_dpop if route == "dpop" else [request])
    size = len(pool)
    if forged:
        def rounds(count: int, i: int) -> None:
            for _ in range(count):
                for client in clients:
                    client.data_received(pool[i % size])
                    i += 1
                flush()
    elif connections == 1:
        feed, answer = clients[0].data_received, conns[0].data_received

        def rounds(count: int, first: int) -> None:
            for i in range(first, first + count):
                feed(pool[i % size])
                flush()
                answer(RESPONSE)
                flush()
    else:
        def rounds(count: int, i: int) -> None:
            for _ in range(count):
                for client in clients:
                    client.data_received(pool[i % size])
                    i += 1
                flush()
                for client in clients:
                    # The pooled connection this client's exchange took (the pool is LIFO).
                    client.active.exchange.conn.data_received(RESPONSE)  # type: ignore[union-attr]
                flush()

    warm = -(-2000 // connections)
    rounds(warm, 0)  # warm-up, and a check that the path really completes
    done = warm * connections
    assert sum(c.transport.writes for c in conns) == (0 if forged else done), "upstream writes"
    assert sum(c.transport.writes for c in clients) == done, "client writes"
    count = -(-n // connections)
    TICK[0] = 0.0
    t0 = time.process_time()
    rounds(count, done)
    TICK[1] = TICK[0] / (count * connections) * 1e6
    return (time.process_time() - t0) / (count * connections) * 1e6


TICK = [0.0, 0.0]  # the detector's tick: seconds in the last run, then us per request
TICK_EVERY = 2048  # requests buffered between two ticks (a 100 ms tick at ~20,000 req/s)


class _RefUp:
    def __init__(self, client: _RefClient) -> None:
        self.client = client
        self.p = httptools.HttpResponseParser(self)
        self.h: list[tuple[bytes, bytes]] = []
        self.t = FakeTransport()

    def on_header(self, n: bytes, v: bytes) -> None:
        self.h.append((n, v))

    def on_body(self, b: bytes) -> None:
        self.b = b

    def on_message_complete(self) -> None:
        h = b"".join([n + b": " + v + b"\r\n" for n, v in self.h])
        self.h = []
        self.client.t.write(b"HTTP/1.1 200 OK\r\n" + h + b"\r\n" + self.b)


class _RefClient:
    def __init__(self) -> None:
        self.p = httptools.HttpRequestParser(self)
        self.h: list[tuple[bytes, bytes]] = []
        self.url = b""
        self.t = FakeTransport()
        self.up = _RefUp(self)

    def on_url(self, u: bytes) -> None:
        self.url += u

    def on_header(self, n: bytes, v: bytes) -> None:
        self.h.append((n, v))

    def on_message_complete(self) -> None:
        h = b"".join([n + b": " + v + b"\r\n" for n, v in self.h])
        self.h = []
        self.up.t.write(b"GET " + self.url + b" HTTP/1.1\r\n" + h + b"X-Forwarded-For: x\r\n\r\n")
        self.url = b""


def run_reference(n: int) -> float:
    c = _RefClient()
    feed, answer = c.p.feed_data, c.up.p.feed_data
    t0 = time.process_time()
    for _ in range(n):
        feed(REQUEST)
        answer(RESPONSE)
    return (time.process_time() - t0) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--route", default="plain",
                    choices=["plain", "jwt", "jwt-distinct", "jwt-forged", "dpop"],
                    help="jwt: one token repeated; jwt-distinct: 20,000 tokens cycled (every one "
                         "a cache miss); jwt-forged: the same with bad signatures (every one "
                         "refused); all need `make bench`'s cached key set and tokens; "
                         "dpop: one bound token, a fresh ES256 proof per request")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64,
                    help="client connections served in turn, as wrk -c64 does in make bench "
                         "(1: one connection, request after request)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--rate-limit", action="store_true",
                    help="give the measured route a local rate limit that is never reached")
    ap.add_argument("--metrics", action="store_true",
                    help="keep metrics (an admin section), as /metrics needs")
    ap.add_argument("--tracing", nargs="?", const="export", choices=["propagate", "export"],
                    help="tracing on: propagate (traceparent upstream, trace ids in the log, "
                         "no export) or export (default: every request sampled, its span queued)")
    ap.add_argument("--detection", action="store_true",
                    help="detection on (action deny, never firing), its tick run in-process")
    ap.add_argument("--inbound-trace", action="store_true",
                    help="the client sends a valid traceparent (continued with --tracing)")
    args = ap.parse_args(argv)
    gc.freeze()
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run_wardgate(args.requests, args.route, args.connections, args.rate_limit, args.tracing,
                     args.inbound_trace, args.metrics, args.detection)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0
    ref = min(run_reference(args.requests) for _ in range(args.repeat))
    runs = []
    for _ in range(args.repeat):
        runs.append((run_wardgate(args.requests, args.route, args.connections, args.rate_limit,
                                  args.tracing, args.inbound_trace, args.metrics,
                                  args.detection), TICK[1]))
    wg, tick = min(runs)
    print(f"reference (httptools, no checks): {ref:.2f} us/request")
    label = args.route + (" + local rate limit" if args.rate_limit else "") \
        + (f" + tracing ({args.tracing})" if args.tracing else "") \
        + (" + inbound traceparent" if args.inbound_trace else "") \
        + (" + metrics" if args.metrics else "") + (" + detection" if args.detection else "")
    print(f"wardgate {label}, {args.connections} connection(s): {wg:.2f} us/request "
          f"({wg / ref:.1f}x the reference)")
    if args.detection:
        print(f"  of which the detector's tick: {tick:.2f} us/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
