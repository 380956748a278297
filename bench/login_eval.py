"""The issuer-side scenarios of bench/detect_eval.py: labelled sign-ins sent to a real issuer
(`wardgate issuer`, login detection on) from real distinct loopback source addresses, scored
from the issuer's `detection` log lines.

Benign: people signing in to their own accounts, some mistyping once or twice first, some
from a second network (a phone); an office where many people sign in from one address (a few
mistype, one in ten forgot the password and gives up after two or three tries). Attacks: `credential_stuffing` (a leaked list from a few addresses of one /24: one
password per username) and `password_spraying` (two passwords tried over many usernames from
one network; and one username guessed from many networks, each a try or two). Prints, like
the gateway scenarios, recall and time to detect per scenario, precision and the share of
benign subjects flagged (a verdict about the office's network flags every person behind it).
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOGIN_ATTACKS = ("credential_stuffing", "password_spraying")


def network(address: str) -> str:
    return str(ipaddress.ip_network(f"{address}/24", strict=False))


@dataclass(order=True)
class Login:
    at: float
    source: str = field(compare=False)
    username: str = field(compare=False)
    password: str = field(compare=False)
    label: str = field(compare=False)
    malicious: bool = field(compare=False, default=False)


@dataclass
class LoginInstance:
    scenario: str
    name: str
    networks: set[str]
    kind: str
    user_key: bool = False          # the verdict is about a username, not a network
    first_bad: float = 0.0
    detected: float | None = None


class LoginPlan:
    def __init__(self, scale: float, seconds: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seconds = seconds
        self.sends: list[Login] = []
        self.users: dict[str, str] = {}             # the accounts to create: name -> password
        self.benign: set[str] = set()
        self.benign_nets: dict[str, set[str]] = {}  # network -> benign subjects behind it
        self.instances: list[LoginInstance] = []
        n = max(1, int(5 * scale))
        self._people(max(6, int(40 * scale)), max(4, int(50 * scale)))
        for i in range(n):
            self._stuffing(i)
            self._spraying_one_network(i)
            self._spraying_one_user(i)
        self.sends.sort()

    def _person(self, name: str, sources: list[str], mistakes: int,
                gives_up: bool = False) -> None:
        """Signs in once or twice during the run; `mistakes` wrong tries before the first
        (`gives_up`: only the wrong tries, a forgotten password)."""
        rng = self.rng
        pw = f"pw-{name}-{rng.randrange(10**6)}"
        self.users[name] = pw
        self.benign.add(name)
        for s in sources:
            self.benign_nets.setdefault(network(s), set()).add(name)
        t = rng.uniform(0, self.seconds * 0.6)
        for k in range(mistakes):
            self.sends.append(Login(t, sources[0], name, pw[:-1] + "x" * (k + 1),
                                    f"benign:{name}"))
            t += rng.uniform(0.4, 1.2)
        if gives_up:
            return
        self.sends.append(Login(t, sources[-1], name, pw, f"benign:{name}"))
        if rng.random() < 0.4:  # and once more later (a second device)
            self.sends.append(Login(min(self.seconds, t + rng.uniform(1, 3)), sources[-1],
                                    name, pw, f"benign:{name}"))

    def _people(self, people: int, office: int) -> None:
        rng = self.rng
        for u in range(people):
            home = f"127.80.{u}.{rng.randrange(1, 250)}"
            phone = f"127.81.{u}.{rng.randrange(1, 250)}"
            mistakes = rng.choice([0, 0, 0, 1, 1, 2])
            sources = [home, phone] if mistakes and rng.random() < 0.3 else [home]
            self._person(f"person{u}", sources, mistakes)
        for o in range(office):
            if rng.random() < 0.1:  # a forgotten password: two or three tries, then gone
                self._person(f"staff{o}", ["127.82.0.10"], rng.choice([2, 3]), gives_up=True)
            else:
                self._person(f"staff{o}", ["127.82.0.10"], rng.choice([0, 0, 0, 0, 1]))

    def _attack_start(self) -> float:
        return self.rng.uniform(0.2, 0.5) * self.seconds

    def _stuffing(self, i: int) -> None:
        name = f"credential_stuffing{i}"
        net = f"127.90.{i}"
        t0 = self._attack_start()
        self.instances.append(LoginInstance("credential_stuffing", name, {f"{net}.0/24"},
                                            "credential_stuffing", first_bad=t0))
        for k in range(30):  # a leaked list: one (wrong) password per address
            self.sends.append(Login(t0 + k * 0.1, f"{net}.{1 + k % 5}",
                                    f"leak{i}-{k}@mail.example", f"leaked-{i}-{k}",
                                    f"credential_stuffing:{name}", True))

    def _spraying_one_network(self, i: int) -> None:
        name = f"spray_net{i}"
        net = f"127.91.{i}"
        t0 = self._attack_start()
        self.instances.append(LoginInstance("password_spraying", name, {f"{net}.0/24"},
                                            "password_spraying", first_bad=t0))
        for k in range(30):  # two seasonal passwords over many accounts
            self.sends.append(Login(t0 + k * 0.1, f"{net}.{1 + k % 3}", f"emp{i}-{k}",
                                    ("Winter2026!", "Summer2026!")[k % 2],
                                    f"password_spraying:{name}", True))

    def _spraying_one_user(self, i: int) -> None:
        name = f"spray_user{i}"
        nets = [f"127.92.{i * 10 + k}" for k in range(10)]
        t0 = self._attack_start()
        self.instances.append(LoginInstance("password_spraying", name,
                                            {f"{n}.0/24" for n in nets}, "password_spraying",
                                            user_key=True, first_bad=t0))
        for k in range(20):  # one account, guessed from ten networks in turn
            self.sends.append(Login(t0 + k * 0.2, f"{nets[k % 10]}.7", f"ceo{i}",
                                    f"guess-{k}", f"password_spraying:{name}", True))


def seed_users(cfg: Any, users: dict[str, str]) -> None:
    from wardgate.issuer import admin

    async def add() -> None:
        for name, pw in users.items():
            await admin.add_user(cfg, name, pw, [])

    asyncio.run(add())


def send_logins(plan: LoginPlan, host: str, port: int, threads: int = 12) -> float:
    """Every sign-in at its time (relative to the returned wall-clock start); each source's
    in order on its own keep-alive connection."""
    start = time.time() + 0.3
    buckets: list[list[Login]] = [[] for _ in range(threads)]
    for s in plan.sends:
        buckets[hash(s.source) % threads].append(s)

    def worker(sends: list[Login]) -> None:
        conns: dict[str, http.client.HTTPConnection] = {}
        for s in sends:
            wait = start + s.at - time.time()
            if wait > 0:
                time.sleep(wait)
            body = json.dumps({"username": s.username, "password": s.password})
            for _ in range(2):
                c = conns.get(s.source)
                if c is None:
                    c = conns[s.source] = http.client.HTTPConnection(
                        host, port, timeout=10, source_address=(s.source, 0))
                try:
                    c.request("POST", "/login", body=body,
                              headers={"Content-Type": "application/json"})
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


def read_detections(log: Path) -> list[dict[str, Any]]:
    """The issuer's `detection` log lines; `time` is the wall clock it concluded at."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"event":"detection"' in line:
            rec = json.loads(line)
            rec["time"] = rec.get("detected_at", 0.0)
            out.append(rec)
    return out


def score(plan: LoginPlan, detections: list[dict[str, Any]], start: float) -> dict[str, Any]:
    flagged: set[str] = set()
    true_pos = false_pos = 0
    for d in detections:
        net = network(str(d.get("client", "0.0.0.0")))
        user_key = str(d.get("key", "")).startswith("user:")
        inst = next((i for i in plan.instances if i.kind == d.get("kind")
                     and i.user_key == user_key and net in i.networks), None)
        if inst is not None:
            true_pos += 1
            when = d["time"] - start - inst.first_bad
            inst.detected = when if inst.detected is None else min(inst.detected, when)
            continue
        false_pos += 1
        flagged |= plan.benign_nets.get(net, set())
    out: dict[str, Any] = {"scenarios": {}}
    for sc in LOGIN_ATTACKS:
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
    out["benign_flagged"] = sorted(flagged)
    out["false_positive_rate"] = len(flagged) / len(plan.benign)
    out["detections"] = total
    out["requests"] = len(plan.sends)
    return out


def issuer_overrides() -> dict[str, Any]:
    """The eval issuer's settings beyond tests/issuer/support.base_config (cheap argon2):
    production throttle counts with short delays, login detection on with its defaults."""
    return {"throttle": {"free_failures_per_user": 3, "free_failures_per_address": 20,
                         "base_delay_s": 0.3, "max_delay_s": 2.0},
            "detection": {"action": "log"}}


def evaluate_logins(workdir: Path, scale: float = 1.0, seconds: float = 8.0,
                    seed: int = 17) -> dict[str, Any]:
    """Start an issuer in `workdir`, seed its accounts, send the plan, score its log."""
    from tests.issuer.support import IssuerProcess, base_config

    plan = LoginPlan(scale, seconds, seed)
    workdir.mkdir(parents=True, exist_ok=True)
    iss = IssuerProcess(base_config(workdir, **issuer_overrides()), workdir)
    seed_users(iss.cfg, plan.users)
    iss.start()
    try:
        host, port = iss.cfg.listen.rsplit(":", 1)
        start = send_logins(plan, host, int(port))
        time.sleep(0.3)
        return score(plan, read_detections(workdir / "issuer.log"), start)
    finally:
        iss.stop()
