"""Reading request bodies: size-capped, strict content types, duplicate parameters refused."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from wardgate.issuer.errors import InvalidRequest, PayloadTooLarge

MAX_FIELDS = 64


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def form(request: Request, limit: int) -> dict[str, str]:
    """RFC 6749 §3.2: application/x-www-form-urlencoded, UTF-8; §3.1: no repeated parameters."""
    if _media_type(request) != "application/x-www-form-urlencoded":
        raise InvalidRequest("content type must be application/x-www-form-urlencoded")
    body = await read_body(request, limit)
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                          max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("body is not valid form data") from None
    out: dict[str, str] = {}
    for k, v in pairs:
        if k in out:
            raise InvalidRequest(f"parameter {k!r} repeated")
        if "\x00" in v or "\x00" in k:
            raise InvalidRequest("NUL in parameter")
        out[k] = v
    return out


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


async def json_object(request: Request, limit: int) -> dict[str, Any]:
    if _media_type(request) != "application/json":
        raise InvalidRequest("content type must be application/json")
    body = await read_body(request, limit)
    try:
        data = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidRequest("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body must be a JSON object")
    return data


def need_str(params: dict[str, Any], name: str, max_len: int = 2048) -> str:
    v = params.get(name)
    if not isinstance(v, str) or not v:
        raise InvalidRequest(f"missing parameter {name!r}")
    if len(v) > max_len:
        raise InvalidRequest(f"parameter {name!r} too long")
    return v


def opt_str(params: dict[str, Any], name: str, max_len: int = 2048) -> str | None:
    v = params.get(name)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise InvalidRequest(f"parameter {name!r} must be a string")
    if len(v) > max_len:
        raise InvalidRequest(f"parameter {name!r} too long")
    return v


def scope_list(value: str | None) -> list[str]:
    """RFC 6749 §3.3: space-delimited, case-sensitive; NQCHAR only."""
    if value is None:
        return []
    parts = value.split(" ")
    for p in parts:
        if not p or any(ord(c) < 0x21 or ord(c) > 0x7E or c in '"\\' for c in p):
            raise InvalidRequest("malformed scope")
    return list(dict.fromkeys(parts))
