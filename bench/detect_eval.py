"""How well detection detects: labelled synthetic traffic through a real gateway, scored
(`make bench`; a short run is in tests/detect/test_eval.py).

Benign: subjects with varied rates, each over a small catalogue of its own items; mobile users
changing network once; an office where many users share one address; a service client on the
allow list. Attacks: a stolen token replayed from a new network by another client; one token
shared by clients on several networks; scraping by enumeration; bursts; key probing. Every
source is a real distinct loopback address (127.x.y.z, bound before connecting), not a
forwarded header. Prints, per attack scenario, recall and the time from the first malicious
request to its detection; over all, precision and the share of benign subjects flagged.
The issuer-side scenarios (`credential_stuffing`, `password_spraying`: real sign-ins to a
real issuer from real loopback sources, scored from its log) are in bench/login_eval.py and
run after the gateway's (`--no-issuer` skips them).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUD, ISS = "api", "http://127.0.0.1:9/eval-issuer"
ATTACKS = ("replay", "sharing", "enumeration", "burst", "key_probing")
KINDS = {"replay": "token_replay", "sharing": "token_replay", "enumeration": "enumeration",
         "burst": "rate", "key_probing": "key_probing"}


@dataclass(order=True)
class Send:
    at: float
    source: str = field(compare=False)
    path: str = field(compare=False)
    token: str = field(compare=False)
    ua: str = field(compare=False)
    label: str = field(compare=False)      # "benign:<subject>" or "<attack>:<instance>"
    malicious: bool = field(compare=False, default=False)


@dataclass
class Instance:
    scenario: str
    name: str
    match: str            # what a detection of it carries: "jti:<id>" or "network:<cidr>"
    first_bad: float = 0.0
    detected: float | None = None


class Plan:
    def __init__(self, mint: Callable[..., str], forge: Callable[..., str], scale: float,
                 seconds: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.mint, self.forge = mint, forge
        self.seconds = seconds
        self.sends: list[Send] = []
        self.benign: set[str] = set()
        self.instances: list[Instance] = []
        self.jti_of: dict[str, str] = {}   # label -> jti, for benign subjects
        n = max(1, int(5 * scale))
        self._benign(max(4, int(60 * scale)), max(2, int(10 * scale)), max(4, int(20 * scale)))
        for i in range(n):
            self._replay(i)
            self._sharing(i)
            self._enumeration(i)
            self._burst(i)
            self._probing(i)
        self.sends.sort()

    def _token(self, sub: str, **claims: Any) -> tuple[str, str]:
        jti = uuid.uuid4().hex
        return self.mint(sub, jti, **claims), jti

    def _steady(self, label: str, source: str, token: str, ua: str, rate: float,
                items: list[int], start: float = 0.0, end: float | None = None) -> None:
        t = start + self.rng.uniform(0, 1 / rate)
        end = self.seconds if end is None else end
        while t < end:
            self.sends.append(Send(t, source, f"/items/{self.rng.choice(items)}", token, ua,
                                   label))
            t += self.rng.expovariate(rate)

    def _benign(self, users: int, mobile: int, office: int) -> None:
        rng = self.rng
        for u in range(users):
            sub = f"user{u}"
            token, jti = self._token(sub)
            self.benign.add(sub)
            self.jti_of[sub] = jti
            self._steady(f"benign:{sub}", f"127.10.{u}.{rng.randrange(1, 250)}", token,
                         f"app/{u % 4}", rng.choice([0.3, 1.0, 2.0, 4.0]),
                         rng.sample(range(10_000), 20))
        for m in range(mobile):
            sub = f"mobile{m}"
            token, jti = self._token(sub)
            self.benign.add(sub)
            self.jti_of[sub] = jti
            items = rng.sample(range(10_000), 20)
            half = self.seconds / 2
            self._steady(f"benign:{sub}", f"127.20.{m}.5", token, "phone/1", 1.5, items, 0, half)
            self._steady(f"benign:{sub}", f"127.21.{m}.9", token, "phone/1", 1.5, items, half)
        for o in range(office):
            sub = f"office{o}"
            token, jti = self._token(sub)
            self.benign.add(sub)
            self.jti_of[sub] = jti
            self._steady(f"benign:{sub}", "127.30.0.10", token, f"browser/{o % 3}", 1.0,
                         rng.sample(range(10_000), 20))
        token, jti = self._token("svc-batch", client_id="batch")
        self.benign.add("svc-batch")
        self.jti_of["svc-batch"] = jti
        self._steady("benign:svc-batch", "127.31.0.2", token, "batch/2", 25.0, list(range(5000)))

    def _attack_start(self) -> float:
        return self.rng.uniform(0.2, 0.5) * self.seconds

    def _replay(self, i: int) -> None:
        token, jti = self._token(f"victim{i}")
        name = f"replay{i}"
        self._steady(f"replay:{name}", f"127.40.{i}.7", token, "app/1", 1.0,
                     self.rng.sample(range(10_000), 20))
        t0 = self._attack_start()
        self.instances.append(Instance("replay", name, f"jti:{jti}", t0))
        for k in range(6):
            self.sends.append(Send(t0 + k * 0.5, f"127.41.{i}.66", f"/items/{k}", token,
                                   "curl/8.5", f"replay:{name}", True))

    def _sharing(self, i: int) -> None:
        token, jti = self._token(f"sharer{i}")
        name = f"sharing{i}"
        t0 = self._attack_start()
        self.instances.append(Instance("sharing", name, f"jti:{jti}", t0))
        for k in range(16):  # four clients on four networks, one user agent, taking turns
            self.sends.append(Send(t0 + k * 0.25, f"127.42.{i * 4 + k % 4}.3",
                                   f"/items/{self.rng.randrange(30)}", token, "app/1",
                                   f"sharing:{name}", True))

    def _enumeration(self, i: int) -> None:
        token, jti = self._token(f"scraper{i}")
        name = f"enumeration{i}"
        t0 = self._attack_start()
        self.instances.append(Instance("enumeration", name, f"jti:{jti}", t0))
        for k in range(30):
            self.sends.append(Send(t0 + k * 0.15, f"127.43.{i}.8", f"/items/{5000 + k}",
                                   token, "app/2", f"enumeration:{name}", True))

    def _burst(self, i: int) -> None:
        token, jti = self._token(f"burster{i}")
        name = f"burst{i}"
        items = self.rng.sample(range(10_000), 5)
        self._steady(f"burst:{name}", f"127.44.{i}.9", token, "app/3", 0.5, items)
        t0 = self._attack_start()
        self.instances.append(Instance("burst", name, f"jti:{jti}", t0))
        for k in range(130):
            self.sends.append(Send(t0 + k * 0.012, f"127.44.{i}.9",
                                   f"/items/{items[k % len(items)]}", token, "app/3",
                                   f"burst:{name}", True))

    def _probing(self, i: int) -> None:
        name = f"key_probing{i}"
        t0 = self._attack_start()
        self.instances.append(Instance("key_probing", name, f"network:127.45.{i}.0/24", t0))
        for k in range(25):
            self.sends.append(Send(t0 + k * 0.08, f"127.45.{i}.{1 + k % 5}", "/items/1",
                                   self.forge(f"k{k}"), "probe/1", f"key_probing:{name}", True))


def replay_traffic(plan: Plan, port: int, threads: int = 16) -> float:
    """Send every request at its time (relative to the returned wall-clock start); one
    thread per group of sources, so each source's requests go in order."""
    start = time.time() + 0.3
    buckets: list[list[Send]] = [[] for _ in range(threads)]
    for s in plan.sends:
        buckets[hash(s.source) % threads].append(s)

    def worker(sends: list[Send]) -> None:
        conns: dict[str, http.client.HTTPConnection] = {}
        for s in sends:
            wait = start + s.at - time.time()
            if wait > 0:
                time.sleep(wait)
            for _ in range(2):
                c = conns.get(s.source)
                if c is None:
                    c = conns[s.source] = http.client.HTTPConnection(
                        "127.0.0.1", port, timeout=5, source_address=(s.source, 0))
                try:
                    c.request("GET", s.path, headers={"Authorization": f"Bearer {s.token}",
                                                       "User-Agent": s.ua})
                    c.getresponse().read()
                    break
                except (OSError, http.client.HTTPException):
                    c.close()
                    conns.pop(s.source, None)
        for c in conns.values():
            c.close()

    workers = [threading.Thread(target=worker, args=(b,)) for b in buckets]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return start


def score(plan: Plan, detections: list[dict[str, Any]], start: float) -> dict[str, Any]:
    """Recall and time to detect per scenario; precision and benign subjects flagged."""
    by_match = {inst.match: inst for inst in plan.instances}
    benign_jti = {f"jti:{j}": sub for sub, j in plan.jti_of.items()}
    flagged_benign: set[str] = set()
    true_pos = false_pos = 0
    for d in detections:
        keys = {d.get("key"), f"jti:{d.get('jti')}"}
        inst = next((by_match[k] for k in keys if k in by_match), None)
        if inst is not None:
            true_pos += 1
            when = d["time"] - start - inst.first_bad
            inst.detected = when if inst.detected is None else min(inst.detected, when)
            continue
        false_pos += 1
        sub = next((benign_jti[k] for k in keys if k in benign_jti), None)
        if sub is not None:
            flagged_benign.add(sub)
    out: dict[str, Any] = {"scenarios": {}}
    for sc in ATTACKS:
        insts = [i for i in plan.instances if i.scenario == sc]
        found = [i for i in insts if i.detected is not None]
        ttd = sorted(max(0.0, i.detected) for i in found)  # type: ignore[arg-type]
        out["scenarios"][sc] = {
            "instances": len(insts), "detected": len(found),
            "recall": len(found) / len(insts) if insts else None,
            "ttd_median_s": ttd[len(ttd) // 2] if ttd else None,
            "ttd_max_s": ttd[-1] if ttd else None}
    total = true_pos + false_pos
    out["precision"] = true_pos / total if total else None
    out["benign_subjects"] = len(plan.benign)
    out["benign_flagged"] = sorted(flagged_benign)
    out["false_positive_rate"] = len(flagged_benign) / len(plan.benign)
    out["detections"] = total
    out["requests"] = len(plan.sends)
    return out


def gateway_config(port: int, admin: int, jwks: Path, upstream: str, token_env: str
                   ) -> dict[str, Any]:
    auth = {"providers": ["eval"]}
    return {
        "listen": f"127.0.0.1:{port}", "workers": 1, "access_log": {"enabled": False},
        "admin": {"listen": f"127.0.0.1:{admin}", "token_env": token_env},
        "providers": [{"name": "eval", "issuer": ISS, "audiences": [AUD],
                       "algorithms": ["RS256"], "jwks_file": str(jwks)}],
        "upstreams": [{"name": "up", "targets": [upstream]}],
        "routes": [{"name": "items", "match": {"path": "/items/{id}"}, "upstream": "up",
                    "auth": auth}],
        "detection": {"action": "log", "allow_clients": ["batch"]},
    }


def keys(workdir: Path) -> tuple[Callable[..., str], Callable[..., str], Path]:
    """A signing key the gateway trusts (its JWKS file), and one it does not (to forge)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    good = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(good.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    path = workdir / "eval-jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    now = int(time.time())

    def mint(sub: str, jti: str, **claims: Any) -> str:
        body = {"iss": ISS, "aud": AUD, "sub": sub, "iat": now, "exp": now + 3600, "jti": jti,
                **claims}
        return jwt.encode(body, good, algorithm="RS256", headers={"kid": "k1"})

    def forge(kid: str) -> str:
        body = {"iss": ISS, "aud": AUD, "sub": "x", "iat": now, "exp": now + 3600}
        return jwt.encode(body, bad, algorithm="RS256", headers={"kid": kid})

    return mint, forge, path


def fetch_detections(admin: int, token: str) -> list[dict[str, Any]]:
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
    c.request("GET", "/admin/detections?limit=1024", headers={"Authorization": f"Bearer {token}"})
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError(f"/admin/detections: {r.status}")
    return json.loads(body)["detections"]


def evaluate(port: int, admin: int, admin_token: str, mint: Callable[..., str],
             forge: Callable[..., str], scale: float = 1.0, seconds: float = 12.0,
             seed: int = 17) -> dict[str, Any]:
    plan = Plan(mint, forge, scale, seconds, seed)
    start = replay_traffic(plan, port)
    time.sleep(0.6)  # the detector's last runs
    return score(plan, fetch_detections(admin, admin_token), start)


def report(res: dict[str, Any]) -> str:
    lines = [f"\ndetection evaluation: {res['requests']:,} requests, "
             f"{res['benign_subjects']} benign subjects\n",
             "| scenario | instances | detected | recall | time to detect (median / max) |",
             "|---|---:|---:|---:|---:|"]
    for sc, r in res["scenarios"].items():
        ttd = "-" if r["ttd_median_s"] is None else \
            f"{r['ttd_median_s']:.2f} s / {r['ttd_max_s']:.2f} s"
        lines.append(f"| {sc} | {r['instances']} | {r['detected']} | {r['recall']:.2f} | {ttd} |")
    prec = "-" if res["precision"] is None else f"{res['precision']:.2f}"
    lines.append(f"\nprecision {prec} over {res['detections']} detections; benign subjects "
                 f"flagged {len(res['benign_flagged'])} of {res['benign_subjects']} "
                 f"({res['false_positive_rate']:.1%})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="instances and subjects x this")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-issuer", action="store_true", help="skip the sign-in scenarios")
    args = ap.parse_args(argv)
    import targets
    import yaml
    from procs import ProcessSet, free_port, wait_for_port

    work = Path(tempfile.mkdtemp(prefix="wardgate-detect-eval-"))
    procs = ProcessSet(work)
    token = secrets.token_hex(16)
    env = {**os.environ, "WG_EVAL_ADMIN": token}
    try:
        mint, forge, jwks = keys(work)
        upstream = targets.start_upstream(procs, work)
        port, admin = free_port(), free_port()
        conf = work / "wardgate-eval.yaml"
        conf.write_text(yaml.safe_dump(gateway_config(
            port, admin, jwks, f"http://127.0.0.1:{upstream.port}", "WG_EVAL_ADMIN"),
            sort_keys=False))
        m = procs.start("wardgate-eval", [str(targets.WARDGATE), "run", "--config", str(conf)],
                        env=env)
        wait_for_port(port, m, timeout=30)
        wait_for_port(admin, m, timeout=30)
        res = evaluate(port, admin, token, mint, forge, args.scale, args.seconds)
        print(json.dumps(res, indent=2) if args.json else report(res))
        if not args.no_issuer:
            import login_eval

            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.issuer
            logins = login_eval.evaluate_logins(work / "issuer", args.scale, args.seconds)
            print(json.dumps(logins, indent=2) if args.json
                  else "\nissuer (sign-ins):" + report(logins))
        return 0
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
