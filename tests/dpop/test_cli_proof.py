"""`wardgate dpop keygen | jkt | proof` (the CLI process): its proofs pass the gateway's
verifier and an independent one (PyJWT), and bad input is a clear error, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jwt as pyjwt
import pytest

from tests.support.dpop import ath, jwk_thumbprint
from wardgate.dpop import htu
from wardgate.dpop.proof import ProofVerifier


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wardgate", "dpop", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_keygen_and_proof_verify(tmp_path: Path, alg: str) -> None:
    key = tmp_path / "k.json"
    r = cli("keygen", "--out", str(key), "--alg", alg)
    assert r.returncode == 0, r.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    jwk = json.loads(key.read_text())
    assert "d" in jwk
    jkt = r.stdout.strip()
    pub = {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y")}
    assert jkt == jwk_thumbprint(pub)  # the independent RFC 7638 computation
    assert cli("jkt", "--key", str(key)).stdout.strip() == jkt

    url = "https://api.example:443/a/b?x=1"
    r = cli("proof", "--key", str(key), "--method", "GET", "--url", url, "--token", "tok.en.x")
    assert r.returncode == 0, r.stderr
    proof = r.stdout.strip()
    header = pyjwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt" and header["alg"] == alg and "d" not in header["jwk"]
    # PyJWT checks the signature with the public key from the header
    claims = pyjwt.decode(proof, pyjwt.PyJWK(header["jwk"], alg).key, algorithms=[alg])
    assert claims["htu"] == "https://api.example:443/a/b" and claims["htm"] == "GET"
    assert claims["ath"] == ath("tok.en.x")
    # ... and so does the gateway's verifier, binding to the same thumbprint
    v = ProofVerifier(["ES256", "EdDSA"], max_age_s=60, max_future_s=5)
    uri = htu.request_uri("https", "api.example", "/a/b")
    assert uri is not None
    p = v.verify(proof.encode(), method="GET", uri=uri, now=time.time(),
                 access_token=b"tok.en.x", jkt=jkt)
    assert p.jkt == jkt
    # every run is a new proof
    assert cli("proof", "--key", str(key), "--method", "GET", "--url", url).stdout != r.stdout


def test_errors_are_messages(tmp_path: Path) -> None:
    key = tmp_path / "k.json"
    assert cli("keygen", "--out", str(key)).returncode == 0
    r = cli("keygen", "--out", str(key))
    assert r.returncode == 1 and "exists" in r.stderr and "Traceback" not in r.stderr
    assert cli("keygen", "--out", str(key), "--force").returncode == 0
    r = cli("proof", "--key", str(tmp_path / "none.json"), "--method", "GET",
            "--url", "http://x/")
    assert r.returncode == 2 and "No such file" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad.json").write_text('{"kty": "RSA", "n": "x", "e": "AQAB", "d": "x"}')
    r = cli("proof", "--key", str(tmp_path / "bad.json"), "--method", "GET",
            "--url", "http://x/")
    assert r.returncode == 2 and "P-256 or an Ed25519" in r.stderr
    r = cli("proof", "--key", str(key), "--method", "GET", "--url", "/relative")
    assert r.returncode == 2 and "absolute" in r.stderr


def test_the_public_half_comes_from_the_private_key(tmp_path: Path) -> None:
    """x/y edited in the file (another key's) change nothing: the proof names the key that
    signs it, so it verifies and binds to that key's thumbprint."""
    key = tmp_path / "k.json"
    other = tmp_path / "o.json"
    jkt = cli("keygen", "--out", str(key)).stdout.strip()
    assert cli("keygen", "--out", str(other)).returncode == 0
    mixed = json.loads(other.read_text()) | {"d": json.loads(key.read_text())["d"]}
    (tmp_path / "m.json").write_text(json.dumps(mixed))
    assert cli("jkt", "--key", str(tmp_path / "m.json")).stdout.strip() == jkt
    proof = cli("proof", "--key", str(tmp_path / "m.json"), "--method", "GET",
                "--url", "http://h/x").stdout.strip()
    v = ProofVerifier(["ES256"], max_age_s=60, max_future_s=5)
    assert v.verify(proof.encode(), method="GET", uri="http://h/x", now=time.time()).jkt == jkt
