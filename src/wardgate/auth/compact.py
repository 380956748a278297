"""Strict parsing of a JWS Compact Serialization (RFC 7515 §7.1) before any library sees it.

joserfc would parse the header and payload too, but lets the last duplicate key win and accepts
some shapes we refuse; parsing them here once also gives the verifier precise reason codes.
"""

from __future__ import annotations

import binascii
import json
import json.scanner
from collections.abc import Callable
from typing import Any, NamedTuple

from wardgate.auth.errors import Rejected

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
# base64url -> standard base64 in one pass: '-_' become '+/', and '+', '/' and '=' (which
# would otherwise pass as standard base64) become '!', which strict a2b_base64 refuses
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/!!!")
_PAD = (b"", b"", b"==", b"=")


class Parts(NamedTuple):
    """A compact JWS taken apart once; the verifier never re-parses it."""

    header: dict[str, Any]
    claims: dict[str, Any]
    payload_segment: bytes
    signing_input: bytes  # RFC 7515 §5.2 step 8: ASCII(header "." payload)
    signature: bytes
    header_segment: bytes  # the header as sent: tokens of one issuer and key share it


_new_parts = tuple.__new__


def b64url_decode(segment: bytes) -> bytes:
    """RFC 7515 §2: base64url without padding. Refuse '=', '+', '/', whitespace and stray bits.

    Non-canonical encodings would give one token several spellings (RFC 4648 §3.5).
    """
    rem = len(segment) % 4
    if rem == 1:
        raise Rejected("malformed")
    if rem:
        # the unused low bits of the last character must be zero (RFC 4648 §3.5)
        mask = 0x0F if rem == 2 else 0x03
        if _INDEX.get(segment[-1], mask) & mask:
            raise Rejected("malformed")
    try:
        # strict mode refuses every byte outside the standard alphabet (whitespace, non-ASCII,
        # '.', and the '!' that '+', '/' and '=' were mapped to), so the input was exactly
        # [A-Za-z0-9_-]*; the padding is appended after the translation
        return binascii.a2b_base64(segment.translate(_TO_STANDARD) + _PAD[rem], strict_mode=True)
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


# built once: json.loads with keyword arguments would build a new decoder for every call. The
# scanner is called directly (what JSONDecoder.decode does, less two Python frames and two
# regex matches); _WS is the whitespace JSON allows around the value (RFC 8259 §2), exactly
# what JSONDecoder.decode skips (json.decoder.WHITESPACE).
_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_no_constant)
_SCAN: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]
_WS = " \t\n\r"


def json_object(raw: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON that must be an object with unique keys (RFC 7519 §7.2 steps 4, 10)."""
    try:
        # str input stops json from guessing UTF-16/32; a leading BOM is not JSON whitespace,
        # so it fails as "Expecting value", as json.loads refuses it
        text = raw.decode("utf-8")
        value, end = _SCAN(text, 0 if text[:1] == "{" else len(text) - len(text.lstrip(_WS)))
        if end != len(text) and text[end:].strip(_WS):
            raise Rejected("malformed")  # data after the value
    except Rejected:
        raise
    except RecursionError:
        raise Rejected("too_deep") from None
    except (StopIteration, UnicodeDecodeError, ValueError):
        # StopIteration: no JSON value where one must start
        raise Rejected("malformed") from None
    if not isinstance(value, dict):
        raise Rejected("malformed")
    return value


#: every Rejected reason `split` (and the decoders it calls) can raise: a token refused for
#: any other reason got through split, so it is a well-formed b64token (route.py)
SPLIT_REASONS = frozenset({"oversize", "jwe", "malformed", "duplicate_key", "too_deep"})

#: header segment -> its parsed header, for `split`'s callers that keep one (see HeaderMemo)
HeaderMemo = dict[bytes, dict[str, Any]]
HEADER_MEMO_MAX = 64  # distinct headers remembered; the memo is emptied when it is full


def split(token: bytes, max_bytes: int, memo: HeaderMemo | None = None) -> Parts:
    """Take a compact JWS apart, or raise Rejected.

    The size cap comes first so no decoder ever sees an oversize input. With `memo`, a header
    segment seen before is not decoded again: the result of the same strict parse of the same
    bytes is reused (a Parts.header taken from the memo is shared: callers must not change it).
    Only headers that parsed are remembered, and at most HEADER_MEMO_MAX of them, so tokens with
    ever-new headers cost what they cost without a memo.
    """
    if len(token) > max_bytes:
        raise Rejected("oversize")
    parts = token.split(b".")
    if len(parts) == 5:
        raise Rejected("jwe")  # RFC 7516 compact form: we accept signed tokens only
    if len(parts) != 3:
        raise Rejected("malformed")
    head = parts[0]
    if memo is None:
        header = json_object(b64url_decode(head))
    else:
        known = memo.get(head)
        if known is None:
            known = json_object(b64url_decode(head))
            if len(memo) >= HEADER_MEMO_MAX:
                memo.clear()
            memo[head] = known
        header = known
    claims = json_object(b64url_decode(parts[1]))
    signature = b64url_decode(parts[2])
    # tuple.__new__ directly: Parts(...) would run the namedtuple's Python-level __new__
    return _new_parts(Parts, (header, claims, parts[1], token[:len(head) + 1 + len(parts[1])],
                              signature, head))
