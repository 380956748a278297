"""`wardgate dpop keygen | jkt | proof`: a client-side DPoP key and its proofs, from a shell.

For trying DPoP routes with curl (the demo's "what to try" uses it) and for scripts. The key
file is a private JWK (ES256: EC P-256, EdDSA: Ed25519), written 0600; a proof is printed on
stdout, one line, for `-H "DPoP: $(wardgate dpop proof ...)"`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from wardgate.dpop.thumb import b64url, thumbprint

ALGS = ("ES256", "EdDSA")


class KeyFileError(Exception):
    pass


def _b64d(value: object) -> bytes:
    if not isinstance(value, str):
        raise KeyFileError("a key member is not a string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise KeyFileError("a key member is not base64url") from None


def generate(alg: str) -> dict[str, Any]:
    """A new private JWK for `alg`."""
    if alg == "ES256":
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        nums = key.private_numbers()
        pub = nums.public_numbers
        return {"kty": "EC", "crv": "P-256", "alg": alg,
                "x": b64url(pub.x.to_bytes(32, "big")), "y": b64url(pub.y.to_bytes(32, "big")),
                "d": b64url(nums.private_value.to_bytes(32, "big"))}
    if alg == "EdDSA":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        okp = ed25519.Ed25519PrivateKey.generate()
        raw = serialization.Encoding.Raw
        return {"kty": "OKP", "crv": "Ed25519", "alg": alg,
                "x": b64url(okp.public_key().public_bytes(raw, serialization.PublicFormat.Raw)),
                "d": b64url(okp.private_bytes(raw, serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption()))}
    raise KeyFileError(f"algorithm must be one of {', '.join(ALGS)}")


class Signer:
    """A private JWK loaded once; `proof()` signs as many proofs as asked."""

    def __init__(self, jwk: dict[str, Any]) -> None:
        kty, crv = jwk.get("kty"), jwk.get("crv")
        if (kty, crv) not in (("EC", "P-256"), ("OKP", "Ed25519")):
            raise KeyFileError("the key must be an EC P-256 or an Ed25519 private JWK")
        d = _b64d(jwk.get("d"))
        if kty == "EC":
            from cryptography.hazmat.primitives.asymmetric import ec

            self.alg = "ES256"
            try:
                self._ec = ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1())
            except ValueError:
                raise KeyFileError("the P-256 private key is out of range") from None
        else:
            from cryptography.hazmat.primitives.asymmetric import ed25519

            self.alg = "EdDSA"
            try:
                self._ed = ed25519.Ed25519PrivateKey.from_private_bytes(d)
            except ValueError:
                raise KeyFileError("the Ed25519 private key is not 32 bytes") from None
        # the public half is derived from `d`, never read from the file: an edited x/y
        # cannot make proofs that name another key
        if self.alg == "ES256":
            pub = self._ec.public_key().public_numbers()
            self.jwk = {"crv": "P-256", "kty": "EC", "x": b64url(pub.x.to_bytes(32, "big")),
                        "y": b64url(pub.y.to_bytes(32, "big"))}
        else:
            from cryptography.hazmat.primitives import serialization

            raw = self._ed.public_key().public_bytes(serialization.Encoding.Raw,
                                                     serialization.PublicFormat.Raw)
            self.jwk = {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
        self.jkt = thumbprint(self.jwk)
        head = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk}
        self._head = b64url(json.dumps(head, separators=(",", ":")).encode())

    def _sign(self, data: bytes) -> bytes:
        if self.alg == "ES256":
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

            r, s = decode_dss_signature(self._ec.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # RFC 7518 §3.4
        return self._ed.sign(data)

    def proof(self, method: str, url: str, *, token: str | None = None,
              nonce: str | None = None, now: float | None = None) -> str:
        """A proof for `method url` (RFC 9449 §4.2); the URL's query and fragment are left
        out of `htu`; `token` adds `ath`."""
        htu = url.split("#", 1)[0].split("?", 1)[0]
        claims: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": htu,
                                  "iat": int(time.time() if now is None else now)}
        if token is not None:
            claims["ath"] = b64url(hashlib.sha256(token.encode("ascii")).digest())
        if nonce is not None:
            claims["nonce"] = nonce
        body = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = (self._head + "." + body).encode()
        return signing_input.decode() + "." + b64url(self._sign(signing_input))


def load(path: str) -> Signer:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror or exc}") from None
    except ValueError:
        raise KeyFileError(f"{path}: not a JSON JWK") from None
    if not isinstance(data, dict):
        raise KeyFileError(f"{path}: not a JSON JWK")
    return Signer(data)


def write_key(path: str, jwk: dict[str, Any], force: bool = False) -> None:
    target = Path(path)
    if force:
        target.unlink(missing_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(jwk) + "\n")


def _keygen(args: argparse.Namespace) -> int:
    try:
        write_key(args.out, generate(args.alg), args.force)
    except FileExistsError:
        print(f"wardgate dpop keygen: {args.out} exists (--force replaces it)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"wardgate dpop keygen: {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(load(args.out).jkt)
    return 0


def _jkt(args: argparse.Namespace) -> int:
    try:
        print(load(args.key).jkt)
    except KeyFileError as exc:
        print(f"wardgate dpop jkt: {exc}", file=sys.stderr)
        return 2
    return 0


def _proof(args: argparse.Namespace) -> int:
    try:
        signer = load(args.key)
    except KeyFileError as exc:
        print(f"wardgate dpop proof: {exc}", file=sys.stderr)
        return 2
    if not args.url.lower().startswith(("http://", "https://")):
        print("wardgate dpop proof: --url must be an absolute http(s) URL", file=sys.stderr)
        return 2
    if args.token is not None and not args.token.isascii():
        print("wardgate dpop proof: --token is not an ASCII token", file=sys.stderr)
        return 2
    print(signer.proof(args.method, args.url, token=args.token, nonce=args.nonce))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dpop", help="a DPoP key and its proofs (RFC 9449), for clients")
    cmds = p.add_subparsers(dest="dpop_command", metavar="ACTION")
    cmds.required = True
    k = cmds.add_parser("keygen", help="write a new private key (JWK, mode 0600); prints its "
                                       "thumbprint (cnf.jkt, dpop_jkt)")
    k.add_argument("--out", required=True, help="the key file to create")
    k.add_argument("--alg", choices=ALGS, default="ES256")
    k.add_argument("--force", action="store_true", help="replace an existing file")
    k.set_defaults(func=_keygen)
    j = cmds.add_parser("jkt", help="print the key's RFC 7638 thumbprint")
    j.add_argument("--key", required=True)
    j.set_defaults(func=_jkt)
    pr = cmds.add_parser("proof", help="print a fresh proof for one request")
    pr.add_argument("--key", required=True, help="a key file from `wardgate dpop keygen`")
    pr.add_argument("--method", required=True, help="the request's method (htm)")
    pr.add_argument("--url", required=True, help="the request's URL (htu; query dropped)")
    pr.add_argument("--token", help="the access token the request carries (adds ath)")
    pr.add_argument("--nonce", help="the server's DPoP-Nonce")
    pr.set_defaults(func=_proof)
