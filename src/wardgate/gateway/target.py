"""Parse and normalise the request target (RFC 9112 §3.2) into a routing path and query.

Sans-I/O. The gateway routes, authorizes and forwards the *normalised* path, so what the
upstream receives is exactly what the policy was evaluated on.
"""

from __future__ import annotations

from wardgate.errors import BadRequest

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = b"0123456789ABCDEFabcdef"
# Encoded bytes that would change the meaning of the path if decoded: '/', '\', NUL, '%'.
_DANGEROUS_ESCAPES = (b"%2f", b"%5c", b"%00", b"%25")
# One-byte membership tests use the byte's value: `b"#" in data` first tries the needle as an
# integer and raises (and clears) a TypeError inside CPython 3.11, ~80 ns per test.
_PCT, _HASH, _BACKSLASH = ord("%"), ord("#"), ord("\\")


def _decode_unreserved(path: bytes) -> bytes:
    """Decode %XX only where XX is an unreserved character (RFC 3986 §6.2.2.2)."""
    if _PCT not in path:
        return path
    out = bytearray()
    i, n = 0, len(path)
    while i < n:
        c = path[i]
        if c == 0x25:  # '%'
            if i + 2 >= n or path[i + 1] not in _HEX or path[i + 2] not in _HEX:
                raise BadRequest("malformed percent-encoding in path", code="bad_target")
            byte = int(path[i + 1 : i + 3], 16)
            if byte in _UNRESERVED:
                out.append(byte)
            else:
                out += path[i : i + 3].upper()
            i += 3
        else:
            out.append(c)
            i += 1
    return bytes(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, also collapsing empty segments ('//') so routing sees one spelling."""
    out: list[str] = []
    segs = path.split("/")
    for seg in segs[1:]:
        if seg == "..":
            if out:
                out.pop()
        elif seg not in (".", ""):
            out.append(seg)
    trailing = segs[-1] in ("", ".", "..") and len(segs) > 2
    result = "/" + "/".join(out)
    if trailing and result != "/":
        result += "/"
    return result


# Normalised paths seen recently (raw path -> routing path); only successes are kept. Bounded
# by clearing: a scan of distinct paths costs the normal parse, never unbounded memory.
_PATHS: dict[bytes, str] = {}
PATH_CACHE_ENTRIES = 4096


def split_target(target: bytes, method: str) -> tuple[str, bytes]:
    """Return (normalised path, raw query) or raise BadRequest.

    Origin-form only. Absolute-form is refused rather than routed on its authority
    (RFC 9112 §3.2.2 would make the authority win over Host; we never want two hosts in play).
    '*' is allowed for OPTIONS only (asterisk-form, §3.2.4).
    """
    path, _, query = target.partition(b"?")
    text = _PATHS.get(path)
    if text is not None and _HASH not in query:  # a cached path has passed every check below
        return text, query
    if target == b"*":
        if method != "OPTIONS":
            raise BadRequest("asterisk-form is only valid for OPTIONS", close=True, code="bad_target")
        return "*", b""
    if not target.startswith(b"/"):
        raise BadRequest("request target must be in origin-form", close=True, code="bad_target")
    if _HASH in target:
        raise BadRequest("fragment in request target", code="bad_target")
    low = path.lower()
    for esc in _DANGEROUS_ESCAPES:
        if esc in low:
            raise BadRequest("encoded '/', '\\', '%' or NUL in path", code="bad_target")
    if _BACKSLASH in path:
        raise BadRequest("backslash in path", code="bad_target")
    decoded = _decode_unreserved(path)
    text = decoded.decode("ascii", "strict") if decoded.isascii() else None
    if text is None:
        raise BadRequest("non-ASCII bytes in path", code="bad_target")
    if "/." in text or "//" in text:
        text = _remove_dot_segments(text)
    if len(_PATHS) >= PATH_CACHE_ENTRIES:
        _PATHS.clear()
    _PATHS[path] = text
    return text, query
