"""The bench's signing key, its JWKS and pre-minted RS256 access tokens.

Minting 100k RS256 tokens takes ~30 s of CPU, so key and tokens are cached under
bench/results/cache (git-ignored) and reused while every token stays valid for a while.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "http://127.0.0.1/bench-issuer"
AUDIENCE = "bench-api"
SCOPE = "bench:read"
KID = "bench-rs256-1"
LIFETIME_S = 12 * 3600  # under wardgate's default max_lifetime_s (24 h)
MIN_REMAINING_S = 2 * 3600  # re-mint when the cached tokens expire sooner than this


@dataclass(frozen=True)
class KeyMaterial:
    jwks_path: Path  # {"keys": [public JWK]} for wardgate
    public_pem_path: Path  # SubjectPublicKeyInfo PEM for HAProxy's jwt_verify
    private_key: rsa.RSAPrivateKey

    def mint(self, sub: str, now: int, lifetime_s: int = LIFETIME_S) -> str:
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
            "jti": secrets.token_hex(12),
            "scope": f"{SCOPE} profile",
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256",
                          headers={"kid": KID, "typ": "at+jwt"})


def load_or_create_key(cache: Path) -> KeyMaterial:
    cache.mkdir(parents=True, exist_ok=True)
    key_path = cache / "bench-rs256.key.pem"
    if key_path.exists():
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        private_key = loaded
    else:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_path.write_bytes(private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        key_path.chmod(0o600)
    public = private_key.public_key()
    pem_path = cache / "bench-rs256.pub.pem"
    pem_path.write_bytes(public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    jwk.update({"kid": KID, "alg": "RS256", "use": "sig"})
    jwks_path = cache / "jwks.json"
    jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
    return KeyMaterial(jwks_path, pem_path, private_key)


def token_file(keys: KeyMaterial, cache: Path, count: int, fresh: bool = False) -> Path:
    """A file of `count` distinct valid tokens, one a line; minted now or reused from the cache."""
    path = cache / f"tokens-{count}.txt"
    meta_path = cache / f"tokens-{count}.json"
    now = int(time.time())
    if not fresh and path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("kid") == KID and meta.get("lifetime_s") == LIFETIME_S \
                and meta.get("exp", 0) - now > MIN_REMAINING_S \
                and _first_token_verifies(path, keys):
            return path
    started = time.monotonic()
    print(f"minting {count} RS256 tokens (cached afterwards in {cache}) ...", flush=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        for i in range(count):
            out.write(keys.mint(f"user-{i}", now) + "\n")
    tmp.replace(path)
    meta_path.write_text(json.dumps({"kid": KID, "count": count, "iat": now, "lifetime_s": LIFETIME_S,
                                     "exp": now + LIFETIME_S}) + "\n")
    print(f"minted in {time.monotonic() - started:.1f}s", flush=True)
    return path


def _first_token_verifies(path: Path, keys: KeyMaterial) -> bool:
    with path.open() as f:
        first = f.readline().strip()
    try:
        jwt.decode(first, keys.private_key.public_key(), algorithms=["RS256"],
                   audience=AUDIENCE, issuer=ISSUER)
    except jwt.PyJWTError:
        return False
    return True


def forged_file(path: Path) -> Path:
    """Beside the token file: the same tokens, each with its signature tampered (one
    character changed), for the forged-signature flood; made once per token file."""
    out = path.with_name(path.stem + "-forged" + path.suffix)
    if not out.exists() or out.stat().st_mtime < path.stat().st_mtime:
        with path.open() as src, out.open("w") as dst:
            for line in src:
                line = line.strip()
                if line:
                    dst.write(tampered(line) + "\n")
    return out


def tampered(token: str) -> str:
    """The same token with one signature character changed: must be rejected."""
    head, _, sig = token.rpartition(".")
    flipped = "A" if sig[10] != "A" else "B"
    return f"{head}.{sig[:10]}{flipped}{sig[11:]}"
