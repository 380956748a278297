"""Every error the gateway answers with, and the one place they become HTTP responses.

Exception tree (each carries its status; the renderer below is the only code that turns one
into bytes on the wire):

    GatewayError
    ├── ClientError                     4xx about the request itself
    │   ├── BadRequest (400)            malformed HTTP; `close` when framing is untrustworthy
    │   ├── RequestTimeout (408)        slow head or body
    │   ├── NotFound (404) / MethodNotAllowed (405, Allow)
    │   ├── PayloadTooLarge (413) / HeadersTooLarge (431) / UriTooLong (414)
    │   ├── HttpVersionNotSupported (505)
    │   ├── CsrfFailed (403)            cookie-authenticated unsafe request without CSRF token
    │   ├── DetectionDenied (403)       a token, subject or network under a detection verdict
    │   └── RateLimited (429, Retry-After)
    ├── AuthError                       RFC 6750 §3 answers with WWW-Authenticate: Bearer
    │   ├── MissingToken (401, no error attribute: RFC 6750 §3.1)
    │   ├── InvalidRequest (400, error="invalid_request")
    │   ├── InvalidToken (401, error="invalid_token")
    │   ├── InsufficientScope (403, error="insufficient_scope", scope="...")
    │   ├── StepUpRequired (401, error="insufficient_user_authentication", RFC 9470)
    │   └── DpopError                   RFC 9449 §7.1: WWW-Authenticate: DPoP ..., algs="..."
    │       ├── InvalidDpopProof (401, error="invalid_dpop_proof")
    │       ├── UseDpopNonce (401, error="use_dpop_nonce", with DPoP-Nonce)
    │       └── DpopInvalidToken (401, error="invalid_token": a bound token as Bearer, ...)
    └── UpstreamError                   5xx about the upstream or our own key state
        ├── BadGateway (502) / GatewayTimeout (504)
        └── ServiceUnavailable (503)    no healthy target, or keys unavailable
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _json_string  # C; what json.dumps uses


class GatewayError(Exception):
    status: int = 500
    title: str = "Internal Server Error"
    #: RFC 9457 §3.1.1 problem type; "about:blank" means the status says it all
    problem_type: str = "about:blank"
    #: A machine-readable reason code for logs and metrics (never secret-bearing).
    code: str = "error"

    def __init__(self, detail: str = "", *, close: bool = False, code: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.close = close
        if code is not None:
            self.code = code

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass that changes what its answer carries without saying what that depends on
        # is rendered afresh every time: render's memo never serves it a stale answer.
        if ("extra_headers" in cls.__dict__ or "extra_members" in cls.__dict__) \
                and "answer_key" not in cls.__dict__:
            cls.answer_key = GatewayError._not_memoized  # type: ignore[method-assign]

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return []

    def extra_members(self) -> dict[str, object]:
        """Extension members of the problem body (RFC 9457 §3.2)."""
        return {}

    def answer_key(self) -> tuple[object, ...] | None:
        """Everything extra_headers() and extra_members() read, hashable: render keeps whole
        answers of one kind by it. None: this answer is rendered afresh."""
        return ()

    def _not_memoized(self) -> tuple[object, ...] | None:
        return None


class ClientError(GatewayError):
    pass


class BadRequest(ClientError):
    status, title, code = 400, "Bad Request", "bad_request"


class RequestTimeout(ClientError):
    status, title, code = 408, "Request Timeout", "timeout"


class NotFound(ClientError):
    status, title, code = 404, "Not Found", "no_route"


class MethodNotAllowed(ClientError):
    status, title, code = 405, "Method Not Allowed", "method_not_allowed"

    def __init__(self, allow: list[str]) -> None:
        super().__init__("method not allowed on this route")
        self.allow = allow

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"Allow", ", ".join(self.allow).encode())]


class PayloadTooLarge(ClientError):
    status, title, code = 413, "Content Too Large", "body_too_large"


class UriTooLong(ClientError):
    status, title, code = 414, "URI Too Long", "uri_too_long"


class HeadersTooLarge(ClientError):
    status, title, code = 431, "Request Header Fields Too Large", "headers_too_large"


class HttpVersionNotSupported(ClientError):
    status, title, code = 505, "HTTP Version Not Supported", "bad_version"


class RateLimited(ClientError):
    status, title, code = 429, "Too Many Requests", "rate_limited"
    # draft-ietf-httpapi-ratelimit-headers §5.1
    problem_type = "https://iana.org/assignments/http-problem-types#quota-exceeded"

    def __init__(self, retry_after_s: int, detail: str = "rate limit exceeded", *,
                 fields: list[tuple[bytes, bytes]] | None = None,
                 policies: list[str] | None = None) -> None:
        super().__init__(detail)
        self.retry_after_s = max(1, int(retry_after_s))  # RFC 9110 §10.2.3: whole seconds
        self.fields = fields or []  # RateLimit-Policy / RateLimit of the refusing limit
        self.policies = policies or []

    def extra_members(self) -> dict[str, object]:
        return {"violated-policies": self.policies} if self.policies else {}

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"Retry-After", b"%d" % self.retry_after_s), *self.fields]


def _quote(value: str) -> str:
    # RFC 6750 §3: attribute values are quoted-strings; keep them to safe printable ASCII.
    return "".join(c for c in value if 0x20 <= ord(c) < 0x7F and c not in '"\\')


_MEMO_MAX = 1024  # entries of each rendering memo below; emptied when full
_CHALLENGES: dict[tuple[str, str | None, str, str, str | None, str | None],
                  tuple[bytes, bytes]] = {}


class AuthError(GatewayError):
    """RFC 6750 error. `realm` is filled in by the renderer from the route.

    On a route that takes DPoP (RFC 9449 §7.1) `dpop_algs` is set: the answer then also
    challenges with the DPoP scheme, or only with it (`dpop_only`: the request used DPoP, or
    the route requires it)."""

    error: str | None = None

    def __init__(self, detail: str = "", *, code: str | None = None, scope: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.scope = scope
        self.realm = "wardgate"
        self.dpop_algs: str | None = None
        self.dpop_only = False

    def _challenge(self, scheme: str) -> tuple[bytes, bytes]:
        # A handful of distinct values per gateway: each field is built once, so a flood of
        # refused tokens costs no formatting per request.
        algs = self.dpop_algs if scheme == "DPoP" else None
        key = (scheme, self.error, self.realm, self.detail, self.scope, algs)
        out = _CHALLENGES.get(key)
        if out is None:
            parts = [f'realm="{_quote(self.realm)}"']
            if self.error:
                parts.append(f'error="{self.error}"')
                parts.append(f'error_description="{_quote(self.detail)}"')
            if self.scope:
                parts.append(f'scope="{_quote(self.scope)}"')
            if algs:
                parts.append(f'algs="{_quote(algs)}"')
            out = (b"WWW-Authenticate", (scheme + " " + ", ".join(parts)).encode())
            if len(_CHALLENGES) >= _MEMO_MAX:
                _CHALLENGES.clear()
            _CHALLENGES[key] = out
        return out

    def answer_key(self) -> tuple[object, ...] | None:
        return (self.realm, self.scope, self.dpop_algs, self.dpop_only)

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        if self.dpop_algs is None:
            return [self._challenge("Bearer")]
        dpop = self._challenge("DPoP")
        return [dpop] if self.dpop_only else [self._challenge("Bearer"), dpop]


class MissingToken(AuthError):
    status, title, code = 401, "Unauthorized", "no_token"


class InvalidRequest(AuthError):
    status, title, code, error = 400, "Bad Request", "invalid_request", "invalid_request"


class InvalidToken(AuthError):
    status, title, code, error = 401, "Unauthorized", "invalid_token", "invalid_token"


class InsufficientScope(AuthError):
    status, title, code, error = 403, "Forbidden", "insufficient_scope", "insufficient_scope"


class DpopError(AuthError):
    """A DPoP failure (RFC 9449 §7.1): always a DPoP challenge with the accepted `algs`."""

    status, title = 401, "Unauthorized"

    def __init__(self, detail: str, *, algs: str, code: str | None = None,
                 nonce: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.dpop_algs = algs
        self.dpop_only = True
        self.nonce = nonce

    def answer_key(self) -> tuple[object, ...] | None:
        return None if self.nonce is not None else super().answer_key()

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        out = super().extra_headers()
        if self.nonce is not None:
            out.append((b"DPoP-Nonce", self.nonce.encode()))  # RFC 9449 §8.1
        return out


class InvalidDpopProof(DpopError):
    code = error = "invalid_dpop_proof"


class UseDpopNonce(DpopError):
    code = error = "use_dpop_nonce"


class DpopInvalidToken(DpopError):
    """The token does not fit the scheme: a DPoP-bound token as Bearer, an unbound one as
    DPoP, or Bearer on a route that requires DPoP."""

    code = error = "invalid_token"


class StepUpRequired(AuthError):
    """RFC 9470 §3: the token is valid, but this use of it needs a fresh authentication (a
    detection verdict holds for it); the client signs in again and retries with the new token."""

    status, title, code, error = 401, "Unauthorized", "step_up", "insufficient_user_authentication"


class DetectionDenied(ClientError):
    """A detection verdict (wardgate.detect) holds for the token, subject or network."""

    status, title, code = 403, "Forbidden", "detection_denied"


class CsrfFailed(ClientError):
    """A cookie-authenticated, state-changing request without a matching CSRF token."""

    status, title, code = 403, "Forbidden", "csrf_failed"


class UpstreamError(GatewayError):
    pass


class BadGateway(UpstreamError):
    status, title, code = 502, "Bad Gateway", "upstream_error"


class GatewayTimeout(UpstreamError):
    status, title, code = 504, "Gateway Timeout", "upstream_timeout"


class ServiceUnavailable(UpstreamError):
    status, title, code = 503, "Service Unavailable", "unavailable"

    def __init__(self, detail: str = "", *, code: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after_s = retry_after_s

    def answer_key(self) -> tuple[object, ...] | None:
        return (self.retry_after_s,)

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after_s:
            return [(b"Retry-After", str(self.retry_after_s).encode())]
        return []


_BODY_STARTS: dict[tuple[str, str, int, str, str], bytes] = {}
_HEAD_STARTS: dict[tuple[int, str, bytes], bytes] = {}
_ANSWERS: dict[tuple[object, ...], tuple[bytes, ...]] = {}
# stands for the request id while an answer is built for the memo: '#' is in no request id
# (gateway/headers.py), in no header or member we write, and needs no JSON escape
_SLOT = "#"


def render(err: GatewayError, *, request_id: bytes, server: bytes, keep_alive: bool,
           head_only: bool = False, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """The single place an error becomes a response: RFC 9457 problem+json, never a trace.

    Everything but the request id repeats across answers of one kind (the same error, realm,
    challenge and connection header), so each kind is rendered once, around the id: a refused
    request (a flood of forged tokens, say) must not cost more than an accepted one."""
    state = err.answer_key() if extra is None and request_id else None
    if state is None:
        return _render(err, request_id, server, keep_alive, head_only, extra)
    rid = _json_string(request_id.decode("latin-1")).encode()
    key = (type(err), err.detail, err.code, err.close, server, keep_alive, head_only,
           len(request_id), len(rid), state)
    parts = _ANSWERS.get(key)
    if parts is None:
        parts = _answer_parts(err, len(request_id), len(rid), server, keep_alive, head_only)
        if parts is None:
            return _render(err, request_id, server, keep_alive, head_only, None)
        if len(_ANSWERS) >= _MEMO_MAX:
            _ANSWERS.clear()
        _ANSWERS[key] = parts
    if head_only:
        return parts[0] + request_id + parts[1]
    return b"".join((parts[0], request_id, parts[1], rid, parts[2]))


def _answer_parts(err: GatewayError, id_len: int, json_len: int, server: bytes,
                  keep_alive: bool, head_only: bool) -> tuple[bytes, ...] | None:
    """The answer around the request id's two places (X-Request-Id; the body's member, quoted),
    found by rendering with stand-ins of the same lengths. None when a stand-in also occurs
    elsewhere (a configured Server name full of '#')."""
    head_slot, body_slot = _SLOT.encode() * id_len, b'"' + _SLOT.encode() * (json_len - 2) + b'"'
    raw = _render(err, head_slot, server, keep_alive, head_only, None,
                  body_rid=_SLOT * (json_len - 2))
    if raw.count(_SLOT.encode()) != id_len + (0 if head_only else json_len - 2):
        return None
    start, _, rest = raw.partition(head_slot)
    if head_only:
        return start, rest
    middle, _, end = rest.rpartition(body_slot)
    return start, middle, end


def _render(err: GatewayError, request_id: bytes, server: bytes, keep_alive: bool,
            head_only: bool, extra: list[tuple[bytes, bytes]] | None,
            body_rid: str | None = None) -> bytes:
    members = err.extra_members()
    rid = request_id.decode("latin-1") if body_rid is None else body_rid
    if members:
        body = json.dumps(
            {"type": err.problem_type, "title": err.title, "status": err.status,
             "detail": err.detail, "code": err.code, "request_id": rid, **members},
            separators=(",", ":"),
        ).encode()
    else:
        key = (err.problem_type, err.title, err.status, err.detail, err.code)
        start = _BODY_STARTS.get(key)
        if start is None:
            start = json.dumps(
                {"type": err.problem_type, "title": err.title, "status": err.status,
                 "detail": err.detail, "code": err.code}, separators=(",", ":"),
            )[:-1].encode() + b',"request_id":'
            if len(_BODY_STARTS) >= _MEMO_MAX:
                _BODY_STARTS.clear()
            _BODY_STARTS[key] = start
        body = start + _json_string(rid).encode() + b"}"
    hkey = (err.status, err.title, server)
    head_start = _HEAD_STARTS.get(hkey)
    if head_start is None:
        head_start = (b"HTTP/1.1 %d %s\r\nServer: %s\r\nContent-Type: application/problem+json"
                      b"\r\nContent-Length: " % (err.status, err.title.encode(), server))
        if len(_HEAD_STARTS) >= _MEMO_MAX:
            _HEAD_STARTS.clear()
        _HEAD_STARTS[hkey] = head_start
    lines = [head_start + b"%d\r\nCache-Control: no-store\r\nX-Request-Id: " % len(body)
             + request_id]
    for name, value in err.extra_headers():
        lines.append(name + b": " + value)
    if extra:
        for name, value in extra:
            lines.append(name + b": " + value)
    lines.append(b"Connection: keep-alive" if keep_alive and not err.close else b"Connection: close")
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    return head if head_only else head + body
