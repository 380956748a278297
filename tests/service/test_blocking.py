"""The blocking API in a plain WSGI app served on 127.0.0.1 (no framework at all)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

from tests.service.support import JwksServer, SigningKey, claims
from wardgate.service import (
    AuthError,
    BlockingAuth,
    MissingToken,
    ServiceAuth,
    render,
    require_scopes,
)

NEEDS_WRITE = require_scopes("orders:write")


def wsgi_app(auth: BlockingAuth) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # WSGI spells headers HTTP_*; the helper takes any list of (name, value) pairs
        headers = [(k[5:].replace("_", "-"), v) for k, v in environ.items()
                   if k.startswith("HTTP_")]
        try:
            ident = auth.authenticate(headers, peer=environ.get("REMOTE_ADDR"))
            NEEDS_WRITE.check(ident)
        except AuthError as err:
            status, hdrs, body = render(err, realm="wsgi")
            start_response(f"{status} {err.title}", [(n.decode(), v.decode()) for n, v in hdrs])
            return [body]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"sub": ident.sub}).encode()]
    return app


class _Quiet(WSGIRequestHandler):
    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def served(jwks: JwksServer) -> Iterator[str]:
    auth = BlockingAuth(ServiceAuth.zero_trust(jwks.issuer, "api", jwks_uri=jwks.jwks_uri))
    server: WSGIServer = make_server("127.0.0.1", 0, wsgi_app(auth), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        auth.close()


def test_wsgi_app_answers_like_the_gateway(served: str, jwks: JwksServer,
                                           key: SigningKey) -> None:
    writer = key.mint(claims(jwks.issuer, scope="orders:read orders:write"))
    reader = key.mint(claims(jwks.issuer, scope="orders:read"))
    with httpx.Client(trust_env=False, timeout=5) as client:
        r = client.get(served)
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="wsgi"'
        r = client.get(served, headers={"Authorization": f"Bearer {reader}"})
        assert r.status_code == 403 and r.headers["www-authenticate"].endswith(
            'scope="orders:write"')
        r = client.get(served, headers={"Authorization": f"Bearer {writer}"})
        assert r.status_code == 200 and r.json() == {"sub": "42"}


def test_trusted_mode_needs_no_thread() -> None:
    auth = BlockingAuth(ServiceAuth.trust_gateway(sub="X-User-Id"))
    assert auth.authenticate({"X-User-Id": "3"}, peer="127.0.0.1").sub == "3"
    with pytest.raises(MissingToken):
        auth.authenticate({}, peer="127.0.0.1")
    auth.close()


def test_close_is_final(jwks: JwksServer, key: SigningKey) -> None:
    with BlockingAuth(ServiceAuth.zero_trust(jwks.issuer, "api",
                                             jwks_uri=jwks.jwks_uri)) as auth:
        assert auth.ready()
        token = key.mint(claims(jwks.issuer))
        assert auth.authenticate({"Authorization": f"Bearer {token}"}).sub == "42"
    auth.close()  # idempotent
    with pytest.raises(RuntimeError):
        auth.authenticate({"Authorization": f"Bearer {token}"})
