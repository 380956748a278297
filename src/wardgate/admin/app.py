"""The admin listener's HTTP app: /metrics, /admin/* (JSON, OpenAPI at /admin/openapi.json).

Features add their endpoints at one place: append an `APIRouter` to ADMIN_ROUTERS (mounted
under /admin, behind the admin token), or a builder taking the view (ADMIN_ROUTER_BUILDERS).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response

from wardgate.admin.auth import Sessions, request_authorized, unauthorized
from wardgate.admin.dashboard import add_security_headers, build_dashboard
from wardgate.admin.redact import redact
from wardgate.admin.view import AdminView
from wardgate.observe.exposition import OPENMETRICS_TYPE, PROMETHEUS_TYPE, render
from wardgate.observe.http import DURATION, RATELIMIT_DECISIONS, RATELIMIT_RESULTS

#: extra routers mounted under /admin (authenticated); one entry per feature
ADMIN_ROUTERS: list[APIRouter] = []
ADMIN_ROUTER_BUILDERS: list[Callable[[AdminView], APIRouter]] = []
RELOAD_WAIT_S = 40.0


_TARGET_FIELDS = ("up", "state", "active", "ejections", "failures", "ejected_for_s", "share",
                  "open_connections", "idle_connections", "window")


def _status_mix(agg: Any) -> dict[str, dict[str, int]]:
    """route -> status class -> requests, from the duration histogram's counts."""
    fam = agg.families.get(DURATION)
    out: dict[str, dict[str, int]] = {}
    if fam is None:
        return out
    for (route, _method, sc), vals in agg.values[DURATION].items():
        n = sum(vals[: len(fam.bounds) + 1])
        if n:
            row = out.setdefault(route, {})
            row[sc] = row.get(sc, 0) + n
    return out


def _quantiles(agg: Any, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> dict[str, float | None]:
    """Latency quantiles over all routes, from the histogram buckets (upper bounds)."""
    fam = agg.families.get(DURATION)
    if fam is None:
        return {f"p{int(q * 100)}": None for q in qs}
    nb = len(fam.bounds)
    buckets = [0] * (nb + 1)
    for vals in agg.values[DURATION].values():
        for i in range(nb + 1):
            buckets[i] += vals[i]
    total = sum(buckets)
    out: dict[str, float | None] = {}
    for q in qs:
        key = f"p{int(q * 100)}"
        if not total:
            out[key] = None
            continue
        want, cum = q * total, 0
        out[key] = None
        for i, n in enumerate(buckets):
            cum += n
            if cum >= want:
                out[key] = fam.bounds[i] if i < nb else float(fam.bounds[-1])
                break
    return out


def _latency_buckets(agg: Any) -> dict[str, list[float] | list[int]]:
    """All routes' duration buckets (non-cumulative; the last is +Inf), so a client can take
    quantiles over a window from the difference of two summaries."""
    fam = agg.families.get(DURATION)
    if fam is None:
        return {"bounds": [], "counts": []}
    nb = len(fam.bounds)
    counts = [0] * (nb + 1)
    for vals in agg.values[DURATION].values():
        for i in range(nb + 1):
            counts[i] += vals[i]
    return {"bounds": list(fam.bounds), "counts": counts}


def _key_set(ks: dict[str, Any], now: float) -> dict[str, Any]:
    fetched = ks.get("fetched_at")
    return {**ks, "age_s": None if fetched is None else round(now - fetched, 1)}


def _provider_summary(p: dict[str, Any]) -> dict[str, Any]:
    """One provider for the dashboard: the freshest worker's key count and age."""
    sets = p["key_sets"]
    ages = [ks["age_s"] for ks in sets if ks["age_s"] is not None]
    return {"name": p["name"], "keys": max((len(ks["keys"]) for ks in sets), default=0),
            "kids": sorted({k["kid"] or "" for ks in sets for k in ks["keys"]}),
            "age_s": min(ages) if ages else None,
            "last_error": next((ks["last_error"] for ks in sets if ks["last_error"]), None)}


_DETECTION_FIELDS = ("time", "kind", "action", "route", "client", "score", "dry_run")


def _detection_summary(view: AdminView) -> dict[str, Any]:
    """The ten newest detections, trimmed to what the dashboard and `wardgate status` show;
    no key at all while the gateway runs without `detection:`."""
    if view.config().detection is None:
        return {}
    return {"detections": [{k: d.get(k) for k in _DETECTION_FIELDS}
                           for d in view.detections(10)]}


def build_app(view: AdminView) -> FastAPI:
    app = FastAPI(title="wardgate admin API", version="1", openapi_url="/admin/openapi.json",
                  docs_url=None, redoc_url=None)

    sessions = Sessions()

    def require_admin(request: Request) -> None:
        if not request_authorized(request, view.token(), sessions, time.time()):
            raise unauthorized()

    @app.get("/metrics", response_class=Response, tags=["metrics"],
             summary="Prometheus text exposition (OpenMetrics when the Accept header asks)")
    def metrics(request: Request) -> Response:
        if view.config().admin.metrics_auth:
            require_admin(request)
        om = "application/openmetrics-text" in request.headers.get("accept", "")
        body = render(view.metrics(), openmetrics=om, extra_lines=view.process_lines)
        return Response(body, media_type=OPENMETRICS_TYPE if om else PROMETHEUS_TYPE)

    api = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], tags=["admin"])

    @api.get("/routes", summary="Routes as compiled, in matching order")
    def routes() -> dict[str, Any]:
        cfg = view.config()
        return {"routes": [
            {"order": i, "name": r.name, "match": r.match.model_dump(exclude_none=True),
             "upstream": r.upstream,
             "auth": "none" if r.auth == "none" or r.auth is None
             else {"providers": r.auth.provider_names()}}
            for i, r in enumerate(cfg.routes)]}

    @api.get("/upstreams", summary="Upstreams, their circuit breakers and each target's "
             "health and ejection state, per worker")
    def upstreams() -> dict[str, Any]:
        cfg = view.config()
        healthy = view.metrics().values.get("wardgate_upstream_target_healthy", {})
        held = view.upstream_states()
        out = []
        for u in cfg.upstreams:
            per_worker = held.get(u.name, [])
            targets = []
            for t in u.targets:
                seen = [(w["pid"], wt) for w in per_worker for wt in w["targets"]
                        if wt["url"] == t.url]
                states = sorted({wt["state"] for _, wt in seen})
                targets.append({
                    "url": t.url, "weight": t.weight,
                    "healthy": (healthy[(u.name, t.url)][0] == 1)
                    if (u.name, t.url) in healthy else None,
                    # the worst any worker sees: each balances on its own view
                    "state": next((s for s in ("ejected", "half_open") if s in states),
                                  "healthy" if states else None),
                    "workers": [{"pid": pid, **{k: wt[k] for k in _TARGET_FIELDS if k in wt}}
                                for pid, wt in seen]})
            out.append({"name": u.name, "balancer": u.balancer,
                        "breaker": {"limits": {"max_requests": u.circuit_breaker.max_requests,
                                               "max_pending": u.circuit_breaker.max_pending},
                                    "workers": [{"pid": w["pid"], **w["breaker"]}
                                                for w in per_worker]},
                        "targets": targets})
        return {"upstreams": out}

    @api.get("/providers", summary="Token providers and the key set each worker holds "
             "(kid, alg, fetch times, last error; no key material)")
    def providers() -> dict[str, Any]:
        cfg = view.config()
        held = view.keysets()
        now = time.time()
        return {"providers": [
            {"name": p.name, "issuer": p.issuer, "audiences": p.audiences,
             "algorithms": p.algorithms, "jwks_uri": p.jwks_uri,
             "jwks_file": p.jwks_file,
             "key_sets": [_key_set(ks, now) for ks in held.get(p.name, [])]}
            for p in cfg.providers]}

    @api.get("/config", summary="The running configuration, secrets redacted")
    def config() -> dict[str, Any]:
        return {"config": redact(view.config().model_dump(mode="json"))}

    @api.get("/workers", summary="Worker processes of the running generation")
    def workers() -> dict[str, Any]:
        return {"workers": view.workers()}

    @api.get("/denials", summary="Recent refusals (auth and rate limits), newest first")
    def denials(limit: int = Query(100, ge=1, le=1024)) -> dict[str, Any]:
        return view.denials(limit)

    @api.get("/detections", summary="Recent detection verdicts (wardgate.detect), newest first")
    def detections(limit: int = Query(100, ge=1, le=1024)) -> dict[str, Any]:
        return {"detections": view.detections(limit)}

    @api.get("/summary", summary="Totals for the dashboard and `wardgate status`")
    def summary() -> dict[str, Any]:
        agg = view.metrics()
        fam = agg.families.get(DURATION)
        total = sum(sum(v[: len(fam.bounds) + 1]) for v in agg.values[DURATION].values()) \
            if fam is not None else 0
        auth: dict[str, int] = {}
        for (_route, outcome), v in agg.values.get("wardgate_auth_decisions_total", {}).items():
            if v[0]:
                auth[outcome] = auth.get(outcome, 0) + v[0]
        ratelimit: dict[str, dict[str, dict[str, int]]] = {}
        for (route, limit, result), v in agg.values.get(RATELIMIT_DECISIONS, {}).items():
            ratelimit.setdefault(route, {}).setdefault(
                limit, dict.fromkeys(RATELIMIT_RESULTS, 0))[result] = v[0]
        return {"time": time.time(), "requests": total, "ratelimit": ratelimit,
                "latency_s": _quantiles(agg), "latency_buckets": _latency_buckets(agg),
                "status": _status_mix(agg), "auth": auth,
                "upstreams": upstreams()["upstreams"],
                "routes": [r["name"] for r in routes()["routes"]],
                "workers": len(view.workers()),
                "top_refused": view.denials(1)["top_clients"],
                **_detection_summary(view),
                "providers": [_provider_summary(p) for p in providers()["providers"]]}

    @api.post("/reload", summary="Reload the config file (validated first; kept if bad)")
    async def reload() -> dict[str, Any]:
        seq = view.request_reload()
        deadline = time.monotonic() + RELOAD_WAIT_S
        while time.monotonic() < deadline:
            got = view.reload_result(seq)
            if got is not None:
                return got
            await asyncio.sleep(0.1)
        return {"seq": seq, "result": "pending"}

    app.include_router(api)
    add_security_headers(app)
    app.include_router(build_dashboard(view, sessions))
    for r in ADMIN_ROUTERS:
        app.include_router(r, prefix="/admin", dependencies=[Depends(require_admin)])
    for build in ADMIN_ROUTER_BUILDERS:
        app.include_router(build(view), prefix="/admin", dependencies=[Depends(require_admin)])
    return app
