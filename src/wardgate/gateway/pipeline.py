"""The request pipeline, top to bottom, in one place.

    parse (protocol.py) → trace (wardgate.trace, only with `tracing:`) → match route → body
    limit → CORS preflight → authenticate + authorize (wardgate.auth, only on routes that are
    not `auth: none`; DPoP proofs by wardgate.dpop; the revocation set by wardgate.revoke) →
    DPoP replay check on Redis (only for a proof, with `state.redis_url`) → detection verdicts
    (wardgate.detect, only on routes whose detection action is header/step_up/deny/revoke) →
    rate limit (wardgate.limits, only on routes with `rate_limits`) → rewrite path and headers
    (strip hop-by-hop and spoofed identity, add Forwarded/X-Forwarded-*/Via/X-Request-Id and
    the identity) → pick a healthy target → forward over a pooled connection (proxy.py) →
    stream the answer back → access log (and the request's span, wardgate.trace).

Requests run synchronously from parse to the upstream write, auth included; only a token whose
key must first be fetched, and a new upstream connection, pay for a task. A global rate limit
waits for its Redis reply through a callback (no task, no future).
"""

from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING

from wardgate.errors import BadRequest, GatewayError, PayloadTooLarge
from wardgate.gateway.head import METHODS
from wardgate.gateway.headers import upstream_request_lines
from wardgate.gateway.proxy import Exchange

if TYPE_CHECKING:
    from collections.abc import Callable

    from wardgate.gateway.protocol import ClientProtocol
    from wardgate.gateway.request import Request
    from wardgate.gateway.runtime import CompiledRoute, Runtime

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_METHOD_BYTES = {m: m.encode() + b" " for m in METHODS}


class Pipeline:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        # An attribute, not a method, so the trace step can be compiled in: a class compiled
        # by mypyc (setup.py) cannot have a method replaced on an instance.
        self.dispatch: Callable[[ClientProtocol, Request], None] = self._dispatch
        tracer = runtime.tracer
        if tracer is not None:
            # The trace step (wardgate.trace) runs before everything else, so every answer,
            # a refusal too, belongs to a trace. Compiled in here only when tracing is on:
            # without it dispatch has no trace check at all.
            begin, untraced = tracer.begin, self._dispatch

            def dispatch(client: ClientProtocol, req: Request) -> None:
                begin(req)
                untraced(client, req)

            self.dispatch = dispatch

    def _dispatch(self, client: ClientProtocol, req: Request) -> None:
        try:
            route, params, matched = self.rt.router.match(req.host, req.path, req.method)
            req.route = route
            req.params = params
            req.limit = route.max_body
            if (req.content_length or 0) > route.max_body or req.body_bytes > route.max_body:
                raise PayloadTooLarge("request body too large for this route", close=True)
            if req.upgrade is not None and not route.websocket:
                raise BadRequest("WebSocket is not enabled on this route", close=True,
                                 code="websocket_disabled")
            if route.cors is not None and req.method == "OPTIONS" \
                    and req.header(b"access-control-request-method") is not None:
                client.respond(req, *route.cors.preflight(req))
                return
            auth = route.auth
            if auth is not None:
                m = client.auth_memo
                if m is not None and m[0] is route and m[1] is req.headers \
                        and m[2] == req.method and m[3] == req.query and m[4] == req.params \
                        and (m[5] is None or auth.still_valid(m[5])):
                    # The connection's last allowed request again, credentials and all: the
                    # same decision, unless time, a key removal or a revocation changed it.
                    req.identity, req.auth_outcome, req.headers, req.query = m[5:]
                else:
                    decided = auth.check(req)
                    if decided is not True:
                        if isinstance(decided, GatewayError):
                            # answered here, not raised: see RouteAuth.check
                            client.request_failed(req, decided)
                        else:
                            # The token names a key not fetched yet: only this path awaits.
                            client.loop.create_task(
                                self._authorize_then_forward(client, req, route, matched))
                        return
                    self._auth_forward(client, req, route)
                    if req.dpop_key is not None:
                        self._replay_then_forward(client, req, route, matched)
                        return
                detect = route.detect
                if detect is not None:
                    detect(req)  # raises StepUpRequired / DetectionDenied, or adds the header
            lim = route.limiter
            if lim is not None:
                if lim.remote:
                    self._limit_then_forward(client, req, route, matched)
                    return
                # time.monotonic, not loop.time(): see _limit_then_forward
                lim.apply(req, monotonic())  # raises RateLimited
            self._forward(client, req, route, matched)
        except GatewayError as err:
            client.request_failed(req, err)

    def _replay_then_forward(self, client: ClientProtocol, req: Request, route: CompiledRoute,
                             matched: int) -> None:
        """The DPoP step on Redis (wardgate.dpop.step): the proof's jti is claimed across
        every worker; the request goes on when Redis has answered (no task, a callback)."""
        route.auth.start_replay(  # type: ignore[union-attr]
            req, lambda err: self._after_replay(client, req, route, matched, err))

    def _after_replay(self, client: ClientProtocol, req: Request, route: CompiledRoute,
                      matched: int, err: GatewayError | None) -> None:
        if client.closed:
            return
        try:
            if err is not None:
                raise err
            self._after_auth(client, req, route, matched)
        except GatewayError as exc:
            client.request_failed(req, exc)

    def _after_auth(self, client: ClientProtocol, req: Request, route: CompiledRoute,
                    matched: int) -> None:
        """Detection, then the rate limit, then forward: what follows auth on the paths that
        resumed (a key fetch, a DPoP replay check). `dispatch` has the same steps inline."""
        if route.detect is not None:
            route.detect(req)
        if route.limiter is None:
            self._forward(client, req, route, matched)
        else:
            self._limit_then_forward(client, req, route, matched)

    def _limit_then_forward(self, client: ClientProtocol, req: Request, route: CompiledRoute,
                            matched: int) -> None:
        """The rate-limit step (wardgate.limits): local limits decide now; a route with a
        global limit forwards when Redis has answered (or its store-error policy applied)."""
        lim = route.limiter
        # time.monotonic, not loop.time(): uvloop's loop time is cached per iteration at 1 ms,
        # which would cap a burst-0 limit at one request per millisecond
        if not lim.remote:
            lim.apply(req, monotonic())  # raises RateLimited
            self._forward(client, req, route, matched)
            return
        lim.start(req, monotonic(),
                  lambda err: self._resume(client, req, route, matched, err))

    def _resume(self, client: ClientProtocol, req: Request, route: CompiledRoute, matched: int,
                err: GatewayError | None) -> None:
        if client.closed:
            return
        try:
            if err is not None:
                raise err
            self._forward(client, req, route, matched)
        except GatewayError as exc:
            client.request_failed(req, exc)

    async def _authorize_then_forward(self, client: ClientProtocol, req: Request,
                                      route: CompiledRoute, matched: int) -> None:
        try:
            await route.auth.authenticate(req)  # type: ignore[union-attr]
            if client.closed:
                return
            self._auth_forward(client, req, route)
            if req.dpop_key is not None:
                self._replay_then_forward(client, req, route, matched)
                return
            self._after_auth(client, req, route, matched)
        except GatewayError as err:
            client.request_failed(req, err)

    @staticmethod
    def _auth_forward(client: ClientProtocol, req: Request, route: CompiledRoute) -> None:
        """After the route allowed the request: RouteAuth.forward (strip the token and spoofed
        identity, add the identity headers), and the decision remembered for the connection.

        Everything the decision and forward read is in the memo's key: the route, the fields
        (the same list object only when the client repeated its fields byte for byte), the
        method, the query and the path parameters; dispatch reuses it for an equal request."""
        headers, query = req.headers, req.query
        route.auth.forward(req)  # type: ignore[union-attr]
        client.auth_memo = (route, headers, req.method, query, req.params,
                            req.identity, req.auth_outcome, req.headers, req.query)

    def _forward(self, client: ClientProtocol, req: Request, route: CompiledRoute, matched: int) -> None:
        path = req.path if route.path_as_is else route.upstream_path(req.path, req.params, matched)
        target = path.encode()
        if req.query:
            target += b"?" + req.query
        headers = req.headers
        memo = client.rest_memo
        if memo is not None and memo[1] is route and (memo[0] is headers or memo[0] == headers) \
                and req.upgrade is None:
            block = memo[2]  # the same fields as the last request on this connection
        else:
            lines = upstream_request_lines(
                headers, route.strip_headers, client_ip=req.client_ip, scheme=req.scheme,
                host=req.host_header, trusted=req.client_ip in self.rt.trusted,
                request_id=None, keep_upgrade=req.upgrade is not None,
                reserved=route.strip_reserved,
            )
            if req.chunked:
                lines.append(b"Transfer-Encoding: chunked")
            elif req.content_length is not None:
                lines.append(b"Content-Length: %d" % req.content_length)
            lines.append(b"X-Request-Id: ")
            block = b"\r\n".join(lines)
            client.rest_memo = (headers, route, block)
        start = _METHOD_BYTES[req.method] + target + b" HTTP/1.1\r\n"
        host = b"Host: " + req.host_header + b"\r\n" if route.preserve_host else None
        ex = Exchange(client, req, route.cluster, start, host, block, req.chunked)
        req.exchange = ex  # the exchange takes over the request body (it buffers until connected)
        # RFC 9110 §10.1.1 / §15.2: ignore the expectation from 1.0 clients, never send them 1xx.
        if req.expect_continue and req.version == "1.1" and not req.body_done and not req.body_bytes:
            client.send(_CONTINUE)
        ex.start()
