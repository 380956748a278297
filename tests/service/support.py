"""A real JWKS (and discovery) server on 127.0.0.1, and tokens minted with PyJWT.

PyJWT is an implementation independent of joserfc (which wardgate.auth uses), so a token it
signs and the helper accepts shows interoperability, not self-agreement.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class SigningKey:
    def __init__(self, kid: str, alg: str = "RS256") -> None:
        self.kid = kid
        self.alg = alg
        if alg == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            algo = pyjwt.algorithms.RSAAlgorithm
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            algo = pyjwt.algorithms.ECAlgorithm
        self.jwk = {**json.loads(algo.to_jwk(self.private.public_key())), "kid": kid, "alg": alg,
                    "use": "sig"}

    def mint(self, claims: dict[str, Any], *, typ: str = "at+jwt", kid: str | None = None,
             alg: str | None = None) -> str:
        headers = {"typ": typ, "kid": kid or self.kid}
        return pyjwt.encode(claims, self.private, algorithm=alg or self.alg, headers=headers)


class JwksServer:
    """Serves the discovery document and the key set; `keys` can change while it runs."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits: dict[str, int] = {}
        self.fail = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if server.fail:
                    self._send(500, b"{}")
                elif self.path == "/.well-known/openid-configuration":
                    self._send(200, json.dumps({"issuer": server.issuer,
                                                "jwks_uri": server.jwks_uri}).encode())
                elif self.path == "/jwks.json":
                    self._send(200, json.dumps({"keys": server.keys}).encode())
                else:
                    self._send(404, b"{}")

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks.json"

    def start(self) -> JwksServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


def claims(issuer: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {"iss": issuer, "sub": "42", "aud": "api", "iat": now, "nbf": now,
                           "exp": now + 300, "jti": f"j{now}", "scope": "orders:read",
                           "roles": ["user"]}
    out.update(extra)
    return out
