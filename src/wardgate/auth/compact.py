"""Strict parsing of a JWS Compact Serialization (RFC 7515 §7.1) before any library sees it.

joserfc would parse the header and payload too, but lets the last duplicate key win and accepts
some shapes we refuse; parsing them here once also gives the verifier precise reason codes.
"""

from __future__ import annotations

import binascii
import json
import re
from typing import Any, NamedTuple

from wardgate.auth.errors import Rejected

_B64URL = re.compile(rb"[A-Za-z0-9_-]*")
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_PAD = (b"", b"", b"==", b"=")


class Parts(NamedTuple):
    """A compact JWS taken apart once; the verifier never re-parses it."""

    header: dict[str, Any]
    claims: dict[str, Any]
    payload_segment: bytes
    signing_input: bytes  # RFC 7515 §5.2 step 8: ASCII(header "." payload)
    signature: bytes


def b64url_decode(segment: bytes) -> bytes:
    """RFC 7515 §2: base64url without padding. Refuse '=', '+', '/', whitespace and stray bits.

    Non-canonical encodings would give one token several spellings (RFC 4648 §3.5).
    """
    if not _B64URL.fullmatch(segment):
        raise Rejected("malformed")
    rem = len(segment) % 4
    if rem == 1:
        raise Rejected("malformed")
    if rem:
        # the unused low bits of the last character must be zero (RFC 4648 §3.5)
        mask = 0x0F if rem == 2 else 0x03
        if _INDEX[segment[-1]] & mask:
            raise Rejected("malformed")
    try:
        # the alphabet was checked above, so the fast non-strict decoder sees nothing to skip
        return binascii.a2b_base64(segment.translate(_TO_STANDARD) + _PAD[rem])
    except (binascii.Error, ValueError):
        raise Rejected("malformed") from None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        # RFC 7515 §5.2 step 4 / RFC 7519 §4: reject duplicate member names
        raise Rejected("duplicate_key")
    return out


def _no_constant(name: str) -> Any:
    # NaN / Infinity are not JSON (RFC 8259 §6); Python would accept them
    raise Rejected("malformed")


def json_object(raw: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object with unique keys (RFC 7519 §7.2 steps 4, 10)."""
    try:
        text = raw.decode("utf-8")  # str input stops json from guessing UTF-16/32
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except Rejected:
        raise
    except RecursionError:
        raise Rejected("too_deep") from None
    except (UnicodeDecodeError, ValueError):
        raise Rejected("malformed") from None
    if not isinstance(value, dict):
        raise Rejected("malformed")
    return value


def split(token: bytes, max_bytes: int) -> Parts:
    """Take a compact JWS apart, or raise Rejected.

    The size cap comes first so no decoder ever sees an oversize input.
    """
    if len(token) > max_bytes:
        raise Rejected("oversize")
    parts = token.split(b".")
    if len(parts) == 5:
        raise Rejected("jwe")  # RFC 7516 compact form: we accept signed tokens only
    if len(parts) != 3:
        raise Rejected("malformed")
    header = json_object(b64url_decode(parts[0]))
    claims = json_object(b64url_decode(parts[1]))
    signature = b64url_decode(parts[2])
    return Parts(header, claims, parts[1], token[:len(parts[0]) + 1 + len(parts[1])], signature)
