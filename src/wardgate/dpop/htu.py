"""The URI a proof's `htu` is compared with (RFC 9449 §4.3 step 9).

Both sides are normalised the way RFC 3986 §6.2.2 (syntax) and §6.2.3 (scheme) describe,
as RFC 9449 §4.3 asks: scheme and host in lower case, the scheme's default port dropped, an
empty path as "/", percent-encodings in upper case with unreserved characters decoded, and
dot-segments removed (RFC 3986 §5.2.4). Query and fragment are never part of it: the request's
are ignored, and a proof whose `htu` carries either is refused.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_DEFAULT_PORT = {"http": "80", "https": "443"}
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(:[0-9]*)?$")


def _pct(m: re.Match[str]) -> str:
    c = chr(int(m.group(1), 16))
    return c if c in _UNRESERVED else "%" + m.group(1).upper()


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, over whole segments."""
    if "." not in path:
        return path
    out: list[str] = []
    segs = path.split("/")
    for i, seg in enumerate(segs):
        if seg == ".":
            if i == len(segs) - 1:
                out.append("")
            continue
        if seg == "..":
            if len(out) > 1:
                out.pop()
            if i == len(segs) - 1:
                out.append("")
            continue
        out.append(seg)
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def normalise_path(path: str) -> str:
    if "%" in path:
        path = _PCT.sub(_pct, path)
    return remove_dot_segments(path or "/")


def authority(scheme: str, host: str) -> str | None:
    """`host[:port]` normalised for `scheme`; None when it is not a plain host and port."""
    m = _HOST.match(host)
    if m is None:
        return None
    name, port = m.group(1).lower(), (m.group(2) or ":")[1:]
    if "%" in name:
        name = _PCT.sub(_pct, name).lower()
    if not port or port == _DEFAULT_PORT.get(scheme):
        return name
    return name + ":" + str(int(port))


def normalise(uri: str) -> str | None:
    """A proof's `htu` normalised; None when it is not an absolute http(s) URI without
    userinfo, query or fragment."""
    if "?" in uri or "#" in uri or any(c <= " " or c == "\x7f" for c in uri):
        return None
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORT or "@" in parts.netloc or not parts.netloc:
        return None
    auth = authority(scheme, parts.netloc)
    if auth is None:
        return None
    return scheme + "://" + auth + normalise_path(parts.path)


def request_uri(scheme: str, host: str, path: str) -> str | None:
    """The target URI of a request (RFC 9110 §7.1) as the client addressed us, normalised:
    `path` is the request target's path as received (no query)."""
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORT:
        return None
    auth = authority(scheme, host)
    if auth is None:
        return None
    return scheme + "://" + auth + normalise_path(path)
