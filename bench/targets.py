"""Configuration of every process under test, written into the bench's temp directory.

All listeners are on 127.0.0.1. Proxies run on PROXY_CPU; the upstream nginx and wrk share
LOAD_CPU (a 2-core machine leaves no better choice: the proxy under test gets a core alone).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from procs import Managed, ProcessSet, free_port, pinned, wait_for_port
from tokens import AUDIENCE, ISSUER, SCOPE, KeyMaterial

PROXY_CPU = "1"
LOAD_CPU = "0"
PLAIN_PATH = "/plain"
JWT_PATH = "/jwt"
REPO = Path(__file__).resolve().parent.parent
WARDGATE = REPO / ".venv" / "bin" / "wardgate"


@dataclass
class Target:
    name: str
    kind: str  # "plain" or "jwt"
    port: int
    path: str
    managed: Managed | None = None
    pid_for_rss: int | None = None


def _nginx_main(prefix: Path) -> str:
    user = "user root root;\n" if os.geteuid() == 0 else ""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    return f"""{user}daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
"""


def _nginx_http_common(prefix: Path) -> str:
    return f"""    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
"""


def start_upstream(procs: ProcessSet, workdir: Path) -> Target:
    prefix = workdir / "nginx-upstream"
    port = free_port()
    conf = prefix / "nginx.conf"
    prefix.mkdir(parents=True, exist_ok=True)
    conf.write_text(_nginx_main(prefix) + f"""http {{
{_nginx_http_common(prefix)}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{ default_type text/plain; return 200 "ok"; }}
        location = /__bench_status {{ stub_status; }}  # request counter for the RSS check
    }}
}}
""")
    managed = procs.start("nginx-upstream",
                          pinned(LOAD_CPU, ["nginx", "-p", str(prefix), "-c", str(conf)]))
    wait_for_port(port, managed)
    return Target("upstream", "plain", port, PLAIN_PATH, managed)


def start_nginx_proxy(procs: ProcessSet, workdir: Path, upstream_port: int) -> Target:
    prefix = workdir / "nginx-proxy"
    port = free_port()
    conf = prefix / "nginx.conf"
    prefix.mkdir(parents=True, exist_ok=True)
    conf.write_text(_nginx_main(prefix) + f"""http {{
{_nginx_http_common(prefix)}
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 128;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
    managed = procs.start("nginx-proxy",
                          pinned(PROXY_CPU, ["nginx", "-p", str(prefix), "-c", str(conf)]))
    wait_for_port(port, managed)
    return Target("nginx", "plain", port, PLAIN_PATH, managed)


_HAPROXY_HEAD = """global
    nbthread 1
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 75s
    option http-keep-alive
"""


def _haproxy_jwt_rules(pubkey: Path) -> str:
    # The same checks wardgate makes on the bench's tokens: alg pinned, typ, iss, aud, exp,
    # nbf (30 s leeway), the scope, and the RS256 signature (HAProxy 2.5+ jwt_verify; no
    # cache). Negative ACL integers parse as ranges, hence add(30) rather than `lt -30`.
    return f"""    http-request deny deny_status 401 unless {{ http_auth_bearer -m found }}
    http-request set-var(txn.alg) http_auth_bearer,jwt_header_query('$.alg')
    http-request set-var(txn.typ) http_auth_bearer,jwt_header_query('$.typ')
    http-request set-var(txn.iss) http_auth_bearer,jwt_payload_query('$.iss')
    http-request set-var(txn.aud) http_auth_bearer,jwt_payload_query('$.aud')
    http-request set-var(txn.scope) http_auth_bearer,jwt_payload_query('$.scope')
    http-request set-var(txn.exp) http_auth_bearer,jwt_payload_query('$.exp','int')
    http-request set-var(txn.nbf) http_auth_bearer,jwt_payload_query('$.nbf','int')
    http-request set-var(txn.now) date()
    http-request deny deny_status 401 unless {{ var(txn.alg) -m str RS256 }}
    http-request deny deny_status 401 unless {{ var(txn.typ) -m str at+jwt }}
    http-request deny deny_status 401 unless {{ var(txn.iss) -m str {ISSUER} }}
    http-request deny deny_status 401 unless {{ var(txn.aud) -m str {AUDIENCE} }}
    http-request deny deny_status 401 unless {{ http_auth_bearer,jwt_verify(txn.alg,"{pubkey}") -m int 1 }}
    http-request deny deny_status 401 if {{ var(txn.exp),add(30),sub(txn.now) -m int lt 0 }}
    http-request deny deny_status 401 if {{ var(txn.now),add(30),sub(txn.nbf) -m int lt 0 }}
    http-request deny deny_status 403 unless {{ var(txn.scope) -m reg '(^| ){SCOPE}( |$)' }}
"""


def start_floor(procs: ProcessSet, upstream_port: int) -> Target:
    """bench/floor_proxy.py: the cost of the architecture alone (opt-in, plain scenario)."""
    port = free_port()
    script = REPO / "bench" / "floor_proxy.py"
    managed = procs.start("floor", pinned(PROXY_CPU, [str(REPO / ".venv" / "bin" / "python"),
                                                      str(script), str(port),
                                                      str(upstream_port)]))
    wait_for_port(port, managed)
    return Target("floor", "plain", port, PLAIN_PATH, managed)


def start_haproxy(procs: ProcessSet, workdir: Path, upstream_port: int,
                  keys: KeyMaterial | None) -> Target:
    name = "haproxy-jwt" if keys else "haproxy"
    port = free_port()
    conf = workdir / f"{name}.cfg"
    rules = _haproxy_jwt_rules(keys.public_pem_path) if keys else ""
    conf.write_text(_HAPROXY_HEAD + f"""
frontend fe
    bind 127.0.0.1:{port}
{rules}    default_backend be

backend be
    http-reuse safe
    server up 127.0.0.1:{upstream_port}
""")
    managed = procs.start(name, pinned(PROXY_CPU, ["haproxy", "-db", "-f", str(conf)]))
    wait_for_port(port, managed)
    return Target(name, "jwt" if keys else "plain", port, JWT_PATH if keys else PLAIN_PATH,
                  managed)


def wardgate_auth_available() -> tuple[bool, str]:
    """The JWT layer counts as present when wardgate.auth imports and has a ProviderRegistry."""
    try:
        auth = importlib.import_module("wardgate.auth")
    except Exception as exc:
        return False, f"import wardgate.auth failed: {type(exc).__name__}: {exc}"
    if not hasattr(auth, "ProviderRegistry"):
        return False, "wardgate.auth has no ProviderRegistry yet"
    return True, "wardgate.auth.ProviderRegistry present"


def start_wardgate(procs: ProcessSet, workdir: Path, upstream_port: int,
                   keys: KeyMaterial | None, access_log: bool = False,
                   name: str | None = None, python: str | None = None,
                   env: dict[str, str] | None = None) -> list[Target]:
    """One wardgate (workers: 1) with a plain route and, when keys are given, a JWT route.

    `python`: run it with this interpreter instead of the venv's, importing wardgate and its
    dependencies from the venv (the same CPython minor version is needed: compiled packages
    are built for it). `env`: variables added to its environment (WARDGATE_PURE_PYTHON...)."""
    name = name or ("wardgate-accesslog" if access_log else "wardgate")
    port = free_port()
    config: dict[str, object] = {
        "listen": f"127.0.0.1:{port}",
        "workers": 1,
        "admin": {"listen": f"127.0.0.1:{free_port()}"},
        "timeouts": {"drain_s": 2},  # quick shutdown at the end of the bench
        "access_log": ({"enabled": True, "path": str(workdir / f"{name}-access.log")}
                       if access_log else {"enabled": False}),
        "upstreams": [{"name": "up", "targets": [f"http://127.0.0.1:{upstream_port}"]}],
        "routes": [{"name": "plain", "match": {"path_prefix": PLAIN_PATH}, "upstream": "up",
                    "auth": "none"}],
    }
    if keys:
        config["providers"] = [{"name": "bench", "issuer": ISSUER, "audiences": [AUDIENCE],
                                "algorithms": ["RS256"], "jwks_file": str(keys.jwks_path)}]
        routes = config["routes"]
        assert isinstance(routes, list)
        routes.append({"name": "jwt", "match": {"path_prefix": JWT_PATH}, "upstream": "up",
                       "auth": {"providers": ["bench"], "require": {"scopes": [SCOPE]}}})
    conf = workdir / f"{name}.yaml"
    conf.write_text(yaml.safe_dump(config, sort_keys=False))
    argv = [str(WARDGATE), "run", "--config", str(conf)]
    run_env = {**os.environ, **env} if env else None
    if python:
        site = next((REPO / ".venv" / "lib").glob("python3.*/site-packages"))
        run_env = {**os.environ, **(env or {}), "PYTHONPATH": f"{REPO / 'src'}:{site}"}
        argv = [python, "-m", "wardgate.cli", "run", "--config", str(conf)]
    managed = procs.start(name, pinned(PROXY_CPU, argv), env=run_env)
    wait_for_port(port, managed, timeout=30)
    out = [Target(name, "plain", port, PLAIN_PATH, managed)]
    if keys:
        out.append(Target(f"{name}-jwt", "jwt", port, JWT_PATH, managed))
    return out
