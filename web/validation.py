"""Small hand-written validators for request bodies and query strings.

Each one raises ApiError with a 4xx status, so malformed input never reaches the database as a
500. Beyond types and ranges they enforce what PostgreSQL would otherwise reject deep inside a
statement: NUL characters (text and jsonb refuse them), lone surrogates (not encodable as UTF-8),
non-finite numbers (jsonb has no NaN) and absurd nesting.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio
from starlette.requests import Request

from web.error_codes import ErrorCode
from web.errors import ApiError

JSON_BODY_LIMIT = 1 << 20  # 1 MiB: a job request is a few hundred bytes
MAX_NESTING = 32
MAX_INT = 2**31 - 1  # PostgreSQL integer


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def body_timeout_error(why: str) -> ApiError:
    """408, closing the connection: the rest of a stalled body is not worth waiting for."""
    return ApiError(408, ErrorCode.REQUEST_TIMEOUT, why, headers={"Connection": "close"})


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, under the server's body timeouts: each read may wait at most
    POSE_BODY_IDLE_TIMEOUT_S and the whole body POSE_BODY_TIMEOUT_S, else ApiError 408.

    Without them a client sending a byte every few seconds holds its connection (and whatever the
    handler holds) for as long as it likes; uvicorn times out idle connections, not slow bodies."""
    settings = request.app.state.ctx.settings
    idle_s, total_s = settings.body_idle_timeout_s, settings.body_timeout_s
    stream = request.stream()
    deadline = anyio.current_time() + total_s
    while True:
        left = deadline - anyio.current_time()
        if left <= 0:
            raise body_timeout_error(f"the request body took longer than {total_s:g} s")
        try:
            with anyio.fail_after(min(idle_s, left)):
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            if left <= idle_s:
                raise body_timeout_error(f"the request body took longer than {total_s:g} s") from None
            raise body_timeout_error(f"the client sent no body data for {idle_s:g} s") from None
        yield chunk


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) before reading when Content-Length says it is too large and
    while reading when a chunked body grows past ``limit``; 408 for a stalled body (body_chunks)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, ErrorCode.BODY_TOO_LARGE, f"request body exceeds {limit} bytes")
        except ValueError:
            raise ApiError(400, ErrorCode.BAD_REQUEST, "invalid Content-Length") from None
    parts: list[bytes] = []
    size = 0
    async for chunk in body_chunks(request):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, ErrorCode.BODY_TOO_LARGE, f"request body exceeds {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, ErrorCode.MALFORMED_JSON, "the body is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError(400, ErrorCode.MALFORMED_JSON, "the JSON is nested too deeply") from None
    except ValueError as exc:
        raise ApiError(400, ErrorCode.MALFORMED_JSON, f"the body is not valid JSON: {exc}") from None


def is_json_content_type(content_type: str | None) -> bool:
    if not content_type:
        return True  # old clients (curl -d) often send none; the body decides
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_json_object(request: Request, *, limit: int = JSON_BODY_LIMIT) -> dict[str, Any]:
    if not is_json_content_type(request.headers.get("content-type")):
        raise ApiError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
    doc = parse_json(await read_body(request, limit))
    if not isinstance(doc, dict):
        raise ApiError(422, ErrorCode.INVALID_BODY, "the body must be a JSON object")
    return doc


def check_fields(doc: dict[str, Any], allowed: frozenset[str], required: frozenset[str] = frozenset()) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ApiError(422, ErrorCode.UNKNOWN_FIELD, f"unknown field(s): {', '.join(unknown)}")
    missing = sorted(required - set(doc))
    if missing:
        raise ApiError(422, ErrorCode.MISSING_FIELD, f"missing required field(s): {', '.join(missing)}")


def _invalid(name: str, why: str) -> ApiError:
    return ApiError(422, ErrorCode.INVALID_FIELD, f"{name}: {why}")


def clean_text(value: Any, name: str, *, max_len: int, min_len: int = 1) -> str:
    if not isinstance(value, str):
        raise _invalid(name, "must be a string")
    if not min_len <= len(value) <= max_len:
        raise _invalid(name, f"must be {min_len} to {max_len} characters long")
    _check_string(value, name)
    return value


def _check_string(value: str, name: str) -> None:
    if "\x00" in value:
        raise _invalid(name, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(name, "must be valid Unicode (no lone surrogates)") from None


def clean_int(value: Any, name: str, *, lo: int, hi: int) -> int:
    if isinstance(value, float) and value.is_integer():  # 5.0 is an integer to JSON Schema (and clients)
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(name, "must be an integer")
    if not lo <= value <= hi:
        raise _invalid(name, f"must be between {lo} and {hi}")
    return value


def clean_number(value: Any, name: str, *, lo: float, hi: float, lo_exclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(name, "must be a number")
    try:
        value = float(value)
    except OverflowError:  # a JSON integer of hundreds of digits has no float
        value = math.inf
    if not math.isfinite(value) or value > hi or value < lo or (lo_exclusive and value == lo):
        bound = f"greater than {lo}" if lo_exclusive else f"at least {lo}"
        raise _invalid(name, f"must be {bound} and at most {hi}")
    return value


def clean_params(value: Any, name: str = "params") -> dict[str, Any]:
    """A JSON object that PostgreSQL's jsonb will take as it is."""
    if not isinstance(value, dict):
        raise _invalid(name, "must be a JSON object")
    _check_json_value(value, name, 0)
    return value


def _check_json_value(value: Any, name: str, depth: int) -> None:
    if depth > MAX_NESTING:
        raise _invalid(name, f"is nested deeper than {MAX_NESTING} levels")
    if isinstance(value, str):
        _check_string(value, name)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(name, "numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_string(key, name)
            _check_json_value(item, name, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json_value(item, name, depth + 1)


#: What a number written in a query string or form field may look like: ASCII digits only. Python's
#: own int() and float() also take "²", "١٢", "1_000", "infinity" and "--1" slips past a
#: lstrip("+-").isdigit() test, only to fail inside int() as a 500.
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,19}")
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,4})?")


def parse_int_text(text: str, name: str, *, lo: int, hi: int) -> int:
    """An integer from a query string or form field."""
    stripped = text.strip()
    if not _INT_TEXT.fullmatch(stripped):
        raise _invalid(name, "must be an integer")
    return clean_int(int(stripped), name, lo=lo, hi=hi)


def parse_number_text(text: str, name: str, *, lo: float, hi: float, lo_exclusive: bool = False) -> float:
    """A decimal number from a form field; the range check is clean_number's."""
    stripped = text.strip()
    if not _NUMBER_TEXT.fullmatch(stripped):
        raise _invalid(name, "must be a number")
    return clean_number(float(stripped), name, lo=lo, hi=hi, lo_exclusive=lo_exclusive)


def parse_time(text: str, name: str) -> datetime:
    """An ISO 8601 time; without a zone it is taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _invalid(name, "must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def query_params(request: Request, allowed: frozenset[str]) -> dict[str, str]:
    """The query string as a dict, refusing unknown or repeated parameters (a typo should not be a
    silent no-op filter)."""
    items = request.query_params.multi_items()
    out: dict[str, str] = {}
    for key, value in items:
        if key not in allowed:
            raise ApiError(422, ErrorCode.UNKNOWN_PARAMETER, f"unknown query parameter {key!r}")
        if key in out:
            raise ApiError(422, ErrorCode.INVALID_PARAMETER, f"query parameter {key!r} given more than once")
        _check_string(value, key)
        out[key] = value
    return out
