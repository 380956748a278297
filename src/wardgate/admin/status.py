"""`wardgate status`: the admin listener's /admin/summary as a compact terminal summary.

Standard library only (urllib): the command must not load the admin app's web framework.
`render` is pure (a summary in, text out); `fetch_summary` is the one I/O call.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

DEFAULT_ADMIN = "http://127.0.0.1:8081"
TOKEN_ENV = "WARDGATE_ADMIN_TOKEN"
_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class StatusError(Exception):
    """A failure the command reports in one line; `code` is its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    url: str
    token: str


def _admin_url(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "", "::", "[::]"):  # a wildcard listen: reach it on loopback
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def resolve(config: str | None, admin: str | None, token_file: str | None,
            env: dict[str, str] | None = None) -> Target:
    """Where to ask and with which token: flags first, then the config file, then defaults."""
    env = dict(os.environ) if env is None else env
    token: str | None = None
    url = admin
    if config is not None:
        from wardgate.config import ConfigError, load_gateway

        try:
            cfg = load_gateway(config)
        except ConfigError as exc:
            raise StatusError(f"{config}: {'; '.join(map(str, exc.issues))}", 2)
        if not cfg.admin_enabled:
            raise StatusError(f"{config}: no admin: section, so no admin listener runs", 2)
        url = url or _admin_url(cfg.admin.listen)
        if token_file is None and cfg.admin.token_env is not None:
            token = env.get(cfg.admin.token_env, "").strip() or None
        elif token_file is None and cfg.admin.token_file is not None:
            token_file = str(cfg.admin.token_file)
    if token_file is not None:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip() or None
        except OSError as exc:
            raise StatusError(f"token file {token_file}: {exc.strerror or exc}", 2)
    if token is None:
        token = env.get(TOKEN_ENV, "").strip() or None
    if token is None:
        raise StatusError("no admin token: pass --token-file FILE, or set the variable the "
                          f"config's admin.token_env names, or {TOKEN_ENV}", 2)
    url = (url or DEFAULT_ADMIN).rstrip("/")
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    return Target(url, token)


def fetch_summary(target: Target, timeout: float = 5.0) -> dict[str, Any]:
    req = urllib.request.Request(target.url + "/admin/summary",  # noqa: S310 - http(s) only
                                 headers={"Authorization": f"Bearer {target.token}",
                                          "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            body = resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise StatusError(f"{target.url}: 401, the admin token was refused", 2)
        raise StatusError(f"{target.url}/admin/summary: HTTP {exc.code}", 1)
    except urllib.error.URLError as exc:
        reason = exc.reason
        why = getattr(reason, "strerror", None) or str(reason)
        raise StatusError(f"cannot reach the admin listener at {target.url}: {why}", 1)
    except (TimeoutError, OSError) as exc:
        raise StatusError(f"cannot reach the admin listener at {target.url}: {exc}", 1)
    try:
        got = json.loads(body)
    except ValueError:
        raise StatusError(f"{target.url}/admin/summary: not JSON (is this wardgate?)", 1)
    if not isinstance(got, dict) or "requests" not in got:
        raise StatusError(f"{target.url}/admin/summary: not a wardgate summary", 1)
    return got


def _ms(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.1f} s" if s >= 1 else f"{s * 1000:.0f} ms"


def _age(s: float | None) -> str:
    if s is None:
        return "never loaded"
    return f"{s:.0f} s" if s < 90 else (f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h")


def _mix(row: dict[str, int]) -> str:
    return "  ".join(f"{c} {row[c]}" for c in _CLASSES if row.get(c)) or "-"


def render(s: dict[str, Any], url: str, rate: float | None = None) -> str:
    """The summary as lines of `label  values` (rate: requests per second, when measured)."""
    out = [f"wardgate admin at {url}  ({s.get('workers', 0)} workers)"]

    def line(label: str, text: str) -> None:
        out.append(f"{label:<12} {text}")

    line("requests", f"{s['requests']} in all" + (f"   {rate:.1f}/s now" if rate is not None
                                                  else ""))
    lat = s.get("latency_s") or {}
    line("latency", "  ".join(f"{k} {_ms(lat.get(k))}" for k in ("p50", "p95", "p99")))
    status: dict[str, dict[str, int]] = s.get("status") or {}
    total: dict[str, int] = {}
    for row in status.values():
        for c, n in row.items():
            total[c] = total.get(c, 0) + n
    line("status", _mix(total))
    routes = s.get("routes") or []
    width = max((len(r) for r in routes), default=0)
    for i, r in enumerate(routes):
        line("routes" if i == 0 else "", f"{r:<{width}}  {_mix(status.get(r, {}))}")
    auth = s.get("auth") or {}
    line("auth", "  ".join(f"{k} {v}" for k, v in sorted(auth.items())) or "-")
    for u in s.get("upstreams") or []:
        line("upstream", f"{u['name']} ({u['balancer']})")
        for t in u["targets"]:
            state = {True: "up", False: "DOWN", None: "unknown"}[t.get("healthy")]
            line("", f"  {state:<8} {t['url']}")
    for p in s.get("providers") or []:
        kids = ", ".join(k for k in p.get("kids", []) if k) or "-"
        err = f"  last error: {p['last_error']}" if p.get("last_error") else ""
        line("key set", f"{p['name']}  {p['keys']} keys ({kids})  age {_age(p.get('age_s'))}"
             f"{err}")
    limited = [f"{route}/{limit} {r.get('limited', 0)}"
               for route, limits in sorted((s.get("ratelimit") or {}).items())
               for limit, r in sorted(limits.items())]
    if limited:
        line("rate limited", "  ".join(limited))
    top = s.get("top_refused") or []
    line("top refused", "  ".join(f"{c['client']} ({c['count']})" for c in top[:5]) or "none")
    det = s.get("detections")
    if isinstance(det, list) and det:
        for i, d in enumerate(det[:5]):
            line("detections" if i == 0 else "",
                 f"{d.get('kind')} {d.get('action')}{' (dry run)' if d.get('dry_run') else ''}"
                 f"  {d.get('route')}  {d.get('client')}  score {d.get('score')}")
    else:
        line("detections", "none" if not det else json.dumps(det, sort_keys=True))
    return "\n".join(out)


def run_status(config: str | None, admin: str | None, token_file: str | None, as_json: bool,
               interval: float, timeout: float) -> tuple[int, str]:
    """(exit code, text to print): the whole command, minus argv and printing."""
    target = resolve(config, admin, token_file)
    first = fetch_summary(target, timeout)
    if as_json:
        return 0, json.dumps(first, indent=2, sort_keys=True)
    rate = None
    if interval > 0:
        time.sleep(interval)
        second = fetch_summary(target, timeout)
        dt = second["time"] - first["time"]
        rate = max(0, second["requests"] - first["requests"]) / dt if dt > 0 else None
        first = second
    return 0, render(first, target.url, rate)
