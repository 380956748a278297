"""Header lists in one shape: lower-case byte names, byte values (as the auth layer reads them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

HeaderInput = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]


def normalize(headers: HeaderInput) -> list[tuple[bytes, bytes]]:
    """Accept a dict, a list of str pairs (WSGI-like) or of byte pairs (ASGI); keep repeats."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[bytes, bytes]] = []
    for name, value in items:
        n = name.encode("latin-1", "replace") if isinstance(name, str) else name
        v = value.encode("latin-1", "replace") if isinstance(value, str) else value
        out.append((n.lower(), v.strip(b" \t")))
    return out


def first(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for n, v in headers:
        if n == name:
            return v
    return None
