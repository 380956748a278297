"""CORS per route (Fetch standard): preflights answered without a token, headers on responses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wardgate.config.gateway import CorsConfig

if TYPE_CHECKING:
    from wardgate.gateway.request import Request


class CorsPolicy:
    def __init__(self, cfg: CorsConfig, server: bytes) -> None:
        self._any = "*" in cfg.allow_origins and not cfg.allow_credentials
        self._origins = frozenset(o.encode() for o in cfg.allow_origins)
        self._methods = ", ".join(m.upper() for m in cfg.allow_methods).encode()
        self._method_set = frozenset(m.upper().encode() for m in cfg.allow_methods)
        self._headers = ", ".join(cfg.allow_headers).encode()
        self._header_set = frozenset(h.lower().encode() for h in cfg.allow_headers)
        self._expose = ", ".join(cfg.expose_headers).encode()
        self._credentials = cfg.allow_credentials
        self._max_age = str(cfg.max_age_s).encode()
        self._server = server

    def _allowed_origin(self, origin: bytes | None) -> bytes | None:
        if origin is None:
            return None
        if self._any:
            return b"*"
        return origin if origin in self._origins else None

    def response_headers(self, req: Request) -> list[tuple[bytes, bytes]]:
        origin = self._allowed_origin(req.header(b"origin"))
        if origin is None:
            return []
        out = [(b"Access-Control-Allow-Origin", origin), (b"Vary", b"Origin")]
        if self._credentials:
            out.append((b"Access-Control-Allow-Credentials", b"true"))
        if self._expose:
            out.append((b"Access-Control-Expose-Headers", self._expose))
        return out

    def response_lines(self, req: Request) -> list[bytes]:
        return [name + b": " + value for name, value in self.response_headers(req)]

    def preflight(self, req: Request) -> tuple[bytes, int, bool]:
        """Answer an OPTIONS preflight: 204 with the policy, or 403 when not allowed."""
        origin = self._allowed_origin(req.header(b"origin"))
        method = (req.header(b"access-control-request-method") or b"").upper()
        asked = req.header(b"access-control-request-headers") or b""
        names = {h.strip().lower() for h in asked.split(b",") if h.strip()}
        ok = origin is not None and method in self._method_set and names <= self._header_set
        keep = req.keep_alive
        lines = [b"HTTP/1.1 204 No Content" if ok else b"HTTP/1.1 403 Forbidden",
                 b"Server: " + self._server, b"Content-Length: 0", b"Vary: Origin",
                 b"X-Request-Id: " + req.request_id]
        if ok:
            lines += [b"Access-Control-Allow-Origin: " + origin,  # type: ignore[operator]
                      b"Access-Control-Allow-Methods: " + self._methods,
                      b"Access-Control-Allow-Headers: " + self._headers,
                      b"Access-Control-Max-Age: " + self._max_age]
            if self._credentials:
                lines.append(b"Access-Control-Allow-Credentials: true")
        lines.append(b"Connection: keep-alive" if keep else b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n", 204 if ok else 403, keep
