"""Shared building blocks for configuration models."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationInfo


class Strict(BaseModel):
    """Frozen, unknown keys rejected: a typo in a config file is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_hostport(value: str, default_port: int | None = None) -> tuple[str, int]:
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_s = rest.removeprefix(":")
    else:
        host, sep, port_s = text.rpartition(":")
        if not sep:
            host, port_s = text, ""
    if not port_s:
        if default_port is None:
            raise ValueError(f"{value!r}: expected host:port")
        return host or "0.0.0.0", default_port
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ValueError(f"{value!r}: port must be 0-65535")
    return host or "0.0.0.0", int(port_s)


def _check_hostport(v: Any) -> Any:
    if isinstance(v, str):
        parse_hostport(v)
    return v


HostPort = Annotated[str, BeforeValidator(_check_hostport)]


def _size(v: Any) -> Any:
    """Accept 1048576, "1MiB", "64KiB", "10MB"."""
    if isinstance(v, str):
        s = v.strip().replace(" ", "")
        units = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "KB": 1000, "MB": 1000**2,
                 "GB": 1000**3, "B": 1}
        for u, mul in units.items():
            if s.endswith(u) and s[: -len(u)].isdigit():
                return int(s[: -len(u)]) * mul
        if s.isdigit():
            return int(s)
        raise ValueError(f"{v!r}: expected a byte size such as 65536, 64KiB or 10MiB")
    return v


ByteSize = Annotated[int, BeforeValidator(_size)]


def resolve_path(value: str, info: ValidationInfo) -> str:
    base = (info.context or {}).get("base_dir")
    p = Path(value)
    if not p.is_absolute() and base is not None:
        p = Path(base) / p
    return str(p)


def parse_networks(values: list[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def _check_networks(values: list[str]) -> list[str]:
    for item in values:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r}: expected an IP address or CIDR") from None
    return values


#: A list of IP addresses or CIDRs (host bits allowed), checked at load; `parse_networks` turns
#: it into network objects.
NetworkList = Annotated[list[str], AfterValidator(_check_networks)]


def _existing_file(value: str, info: ValidationInfo) -> str:
    path = resolve_path(value, info)
    if not Path(path).is_file():
        raise ValueError(f"file not found: {path}")
    return path


#: A path to a file that must exist, resolved against the config file's folder.
ExistingFile = Annotated[str, AfterValidator(_existing_file)]
