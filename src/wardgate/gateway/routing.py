"""Route matching: host, path, method. Sans-I/O; compiled once per config.

Precedence (most specific first), documented in docs/configuration.md:
  1. host: exact name, then wildcard (longer suffix first), then routes without host;
  2. path: exact `path`, then `path_prefix` — longer (more segments) first, literal segments
     beating `{param}` segments at the same length;
  3. routes naming `methods` before routes accepting any method;
  4. config order.
The first route whose host and path match and whose methods include the request method wins.
If host and path match some routes but none allows the method: 405 with their methods in Allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wardgate.errors import MethodNotAllowed, NotFound


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A path as segments; parameters are (None, name)."""

    literal: str | None                      # set when the pattern has no params
    segments: tuple[tuple[str | None, str], ...]  # (literal or None, param name or "")
    prefix: bool

    @classmethod
    def parse(cls, pattern: str, prefix: bool) -> PathPattern:
        raw = pattern.rstrip("/") if prefix else pattern
        segs: list[tuple[str | None, str]] = []
        for s in raw.split("/")[1:]:
            if s.startswith("{") and s.endswith("}"):
                segs.append((None, s[1:-1]))
            else:
                segs.append((s, ""))
        if prefix and raw == "":
            segs = []
        has_params = any(lit is None for lit, _ in segs)
        return cls(None if has_params else (raw or "/"), tuple(segs), prefix)

    def rank(self) -> tuple[int, int, int]:
        literal_count = sum(1 for lit, _ in self.segments if lit is not None)
        return (1 if self.prefix else 0, -len(self.segments), -literal_count)

    def match(self, path: str) -> tuple[dict[str, str], int] | None:
        """Return (params, length of the matched path prefix) or None."""
        lit = self.literal
        if lit is not None:
            if not self.prefix:
                return ({}, len(path)) if path == lit else None
            if lit == "/":
                return {}, 0
            if path == lit or path.startswith(lit) and path[len(lit)] == "/":
                return {}, len(lit)
            return None
        parts = path.split("/")[1:]
        n = len(self.segments)
        if len(parts) < n or (not self.prefix and len(parts) != n):
            return None
        params: dict[str, str] = {}
        consumed = 0
        for (seg_lit, name), part in zip(self.segments, parts, strict=False):
            if seg_lit is None:
                if not part:
                    return None
                params[name] = part
            elif seg_lit != part:
                return None
            consumed += 1 + len(part)
        return params, consumed


MATCH_CACHE_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class HostPattern:
    exact: str | None
    suffix: str | None  # ".example.com" for "*.example.com"

    @classmethod
    def parse(cls, host: str | None) -> HostPattern:
        if host is None:
            return cls(None, None)
        if host.startswith("*."):
            return cls(None, host[1:])
        return cls(host, None)

    def rank(self) -> tuple[int, int]:
        if self.exact is not None:
            return (0, 0)
        if self.suffix is not None:
            return (1, -len(self.suffix))
        return (2, 0)

    def match(self, host: str) -> bool:
        if self.exact is not None:
            return host == self.exact
        if self.suffix is not None:
            return host.endswith(self.suffix) and len(host) > len(self.suffix)
        return True


@dataclass(slots=True)
class RouteEntry:
    host: HostPattern
    path: PathPattern
    methods: frozenset[str] | None
    order: int
    target: Any  # what the router returns (the compiled route)

    def sort_key(self) -> tuple:
        return (*self.host.rank(), *self.path.rank(), 0 if self.methods else 1, self.order)


class Router:
    def __init__(self, entries: Sequence[RouteEntry]) -> None:
        self._entries = sorted(entries, key=RouteEntry.sort_key)
        # Matches seen recently: APIs repeat the same few (host, path, method) all day. Bounded
        # by clearing, so a scan of random paths costs a rebuild, never unbounded memory.
        self._cache: dict[tuple[str, str, str], tuple[Any, dict[str, str], int]] = {}

    def match(self, host: str, path: str, method: str) -> tuple[Any, dict[str, str], int]:
        """Return (route target, params, matched prefix length) or raise NotFound/MethodNotAllowed.

        The params dict is shared between requests that hit the cache: read it, never change it.
        """
        key = (host, path, method)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        found = self._match(host, path, method)
        if len(self._cache) >= MATCH_CACHE_ENTRIES:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _match(self, host: str, path: str, method: str) -> tuple[Any, dict[str, str], int]:
        allowed: set[str] = set()
        for e in self._entries:
            if not e.host.match(host):
                continue
            m = e.path.match(path)
            if m is None:
                continue
            if e.methods is None or method in e.methods or (method == "HEAD" and "GET" in e.methods):
                return e.target, m[0], m[1]
            allowed |= e.methods
        if allowed:
            if "GET" in allowed:
                allowed.add("HEAD")
            raise MethodNotAllowed(sorted(allowed))
        raise NotFound("no route matches this request")
