"""The demo's ports, state directory and configuration files.

The configs are examples/gateway.yaml and examples/issuer.yaml, copied into the state
directory with the ports substituted (so tests can run the demo on free ports) and
validated before anything starts. Relative paths in them then resolve inside the state
directory, which is what puts the issuer's database and keys under `.wardgate/`.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, fields
from pathlib import Path

from wardgate.config import load_gateway
from wardgate.config.gateway import GatewayConfig
from wardgate.config.issuer import IssuerConfig, load_issuer

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    """DESIGN.md's demo ports; each can be moved with a flag or WARDGATE_DEMO_<NAME>_PORT."""

    issuer: int = 9000
    gateway: int = 8080
    admin: int = 8081
    orders: int = 9101
    reports: int = 9102

    @classmethod
    def resolve(cls, flags: dict[str, int | None], env: dict[str, str] | None = None) -> Ports:
        env = dict(os.environ) if env is None else env
        values: dict[str, int] = {}
        for f in fields(cls):
            flag = flags.get(f.name)
            raw = env.get(f"WARDGATE_DEMO_{f.name.upper()}_PORT")
            if flag is not None:
                values[f.name] = flag
            elif raw:
                if not raw.isdigit() or not 0 < int(raw) < 65536:
                    raise ValueError(f"WARDGATE_DEMO_{f.name.upper()}_PORT={raw!r}: not a port")
                values[f.name] = int(raw)
        ports = cls(**values)
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if not 0 < port < 65536:
                raise ValueError(f"{name} port {port}: not a port")
            if port in seen:
                raise ValueError(f"port {port} is given to both {seen[port]} and {name}")
            seen[port] = name
        return ports

    def items(self) -> list[tuple[str, int]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]

    def url(self, name: str) -> str:
        return f"http://{HOST}:{getattr(self, name)}"


def taken_ports(ports: Ports) -> list[tuple[str, int, str]]:
    """(component, port, reason) for every port we cannot listen on right now."""
    out = []
    for name, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # Same as the real servers (so TIME_WAIT does not count as taken), but no
            # SO_REUSEPORT: the gateway binds with it and would silently share a stale port.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((HOST, port))
            except OSError as exc:
                out.append((name, port, exc.strerror or str(exc)))
    return out


def port_answers(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:port (the gateway's admin API, once built)."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


ADMIN_TOKEN_FILE = "admin-token"
#: the variable examples/gateway.yaml's `admin.token_env` names
ADMIN_TOKEN_ENV = "WARDGATE_ADMIN_TOKEN"


REVOCATION_TOKEN_FILE = "revocation-token"
#: the variable examples/gateway.yaml's and examples/issuer.yaml's feed `token_env` name
REVOCATION_TOKEN_ENV = "WARDGATE_REVOCATION_TOKEN"


DPOP_SECRET_FILE = "dpop-client-secret"
#: the demo's DPoP key (`wardgate dpop keygen` writes it when the printed steps are run)
DPOP_KEY_FILE = "dpop-key.json"


def dpop_client_secret(state: Path) -> tuple[str, Path]:
    """The demo-dpop client's secret (as admin_token)."""
    return _secret_file(state / DPOP_SECRET_FILE)


def admin_token(state: Path) -> tuple[str, Path]:
    """The demo's admin token: generated on the first run into state/admin-token (0600, only
    this user may read it), reused afterwards."""
    return _secret_file(state / ADMIN_TOKEN_FILE)


def revocation_token(state: Path) -> tuple[str, Path]:
    """The token the demo gateway polls the issuer's revocation feed with (as admin_token)."""
    return _secret_file(state / REVOCATION_TOKEN_FILE)


def _secret_file(path: Path) -> tuple[str, Path]:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(32)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
    os.chmod(path, 0o600)  # an older copy may have been more open
    return token, path


def examples_dir() -> Path:
    """examples/ of the source checkout this package runs from (the demo's defaults)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "examples"
        if (candidate / "gateway.yaml").is_file() and (candidate / "issuer.yaml").is_file():
            return candidate
    raise FileNotFoundError("examples/gateway.yaml and examples/issuer.yaml not found; "
                            "pass --examples DIR")


# The example files spell these addresses; each is replaced by the port actually in use.
_DEFAULT = Ports()


def _substitute(text: str, ports: Ports) -> str:
    for name, port in _DEFAULT.items():
        text = text.replace(f"{HOST}:{port}", f"{HOST}:\0{name}\0")
    for name, port in ports.items():
        text = text.replace(f"{HOST}:\0{name}\0", f"{HOST}:{port}")
    return text


@dataclass(frozen=True)
class DemoFiles:
    state: Path
    gateway_yaml: Path
    issuer_yaml: Path
    logs: Path
    gateway: GatewayConfig
    issuer: IssuerConfig


def prepare(state: Path, examples: Path, ports: Ports) -> DemoFiles:
    """Write the demo's configs into `state` and validate them (ConfigError if invalid)."""
    state.mkdir(parents=True, exist_ok=True)
    logs = state / "logs"
    logs.mkdir(exist_ok=True)
    out = {}
    for kind in ("gateway", "issuer"):
        src = examples / f"{kind}.yaml"
        header = f"# Generated by `wardgate demo` from {src}; edit that file instead.\n"
        dst = state / f"{kind}.yaml"
        dst.write_text(header + _substitute(src.read_text(encoding="utf-8"), ports),
                       encoding="utf-8")
        out[kind] = dst
    gw = load_gateway(str(out["gateway"]))
    iss = load_issuer(out["issuer"])
    return DemoFiles(state, out["gateway"], out["issuer"], logs, gw, iss)
