"""Reading request bodies and query strings, and the checks PostgreSQL needs, as pydantic types.

The request models (web/inputs.py) are built from the annotated types here, so a limit is written
once and is both checked and published in /openapi.json. Beyond JSON Schema's types and ranges these
types refuse what PostgreSQL would otherwise reject deep inside a statement, as a 500: NUL characters
(text and jsonb refuse them), lone surrogates (not encodable as UTF-8), non-finite numbers (jsonb has
no NaN) and absurd nesting. ``validated`` turns pydantic's errors into the API's ApiError (422 with
``unknown_field``, ``missing_field`` or ``invalid_field``), so clients see the same codes as ever.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, get_args, get_origin

import anyio
from pydantic import BaseModel, BeforeValidator, ValidationError
from pydantic_core import PydanticCustomError
from starlette.requests import Request

from web.error_codes import ErrorCode
from web.errors import ApiError

JSON_BODY_LIMIT = 1 << 20  # 1 MiB: a job request is a few hundred bytes
MAX_NESTING = 32

M = TypeVar("M", bound=BaseModel)


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


# ---- the checks PostgreSQL needs, as annotated types ------------------------------------------------
def invalid(why: str, code: ErrorCode = ErrorCode.INVALID_FIELD) -> PydanticCustomError:
    """A validation failure whose error type is the API's error code (``validated`` reads it)."""
    return PydanticCustomError(code.value, why)


def _check_string(value: str) -> None:
    if "\x00" in value:
        raise invalid("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid("must be valid Unicode (no lone surrogates)") from None


def _pg_text(value: Any) -> Any:
    """Before pydantic's own str check: only a string, and one PostgreSQL's text can store."""
    if not isinstance(value, str):
        raise invalid("must be a string")
    _check_string(value)
    return value


def _json_int(value: Any) -> Any:
    """A JSON integer: 5.0 counts (it is one to JSON Schema and to clients), true and "5" do not
    (pydantic's lax mode would take both)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid("must be an integer")
    return value


def _json_number(value: Any) -> Any:
    """A JSON number, made a float; one of hundreds of digits has no float and becomes infinity,
    which the field's bounds then refuse."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid("must be a number")
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _pg_json_object(value: Any) -> Any:
    """A JSON object that PostgreSQL's jsonb will take as it is."""
    if not isinstance(value, dict):
        raise invalid("must be a JSON object")
    _check_json_value(value, 0)
    return value


def _check_json_value(value: Any, depth: int) -> None:
    if depth > MAX_NESTING:
        raise invalid(f"is nested deeper than {MAX_NESTING} levels")
    if isinstance(value, str):
        _check_string(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise invalid("numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_string(key)
            _check_json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json_value(item, depth + 1)


#: What a number written in a query string or form field may look like: ASCII digits only. Python's
#: own int() and float() also take "²", "١٢", "1_000", "infinity" and "--1" slips past a
#: lstrip("+-").isdigit() test, only to fail inside int() as a 500.
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,19}")
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,4})?")


def int_from_text(text: str) -> int:
    """An integer from a query string or form field (ASCII digits, an optional sign)."""
    stripped = text.strip()
    if not _INT_TEXT.fullmatch(stripped):
        raise invalid("must be an integer")
    return int(stripped)


def number_from_text(text: str) -> float:
    """A decimal number from a form field; the field's bounds are checked afterwards."""
    stripped = text.strip()
    if not _NUMBER_TEXT.fullmatch(stripped):
        raise invalid("must be a number")
    return float(stripped)


def _query_int(value: Any) -> Any:
    return int_from_text(value) if isinstance(value, str) else _json_int(value)


def _time(value: Any) -> Any:
    """An ISO 8601 time; without a zone it is taken as UTC."""
    if isinstance(value, datetime):
        return value
    _pg_text(value)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise invalid("must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# Markers for ``Annotated[type, Field(bounds...), MARKER]``: the marker comes last, so it runs before
# pydantic's own check of the type and its bounds, and the bounds land in the JSON Schema as
# minimum/maximum/maxLength (a constraint placed after a validator would not).
#: Text PostgreSQL can store.
PG_TEXT = BeforeValidator(_pg_text)
#: An integer sent as a JSON number.
JSON_INT = BeforeValidator(_json_int)
#: A number sent as a JSON number (give it allow_inf_nan=False).
JSON_NUMBER = BeforeValidator(_json_number)
#: An integer written in a query string (ASCII digits only).
QUERY_INT = BeforeValidator(_query_int)

#: Any JSON object jsonb takes: no NUL, no lone surrogate, finite numbers, at most MAX_NESTING deep.
PgJsonObject = Annotated[dict[str, Any], BeforeValidator(_pg_json_object)]
#: An ISO 8601 time in a query string; UTC when it names no zone.
QueryTime = Annotated[datetime, BeforeValidator(_time)]


# ---- from pydantic's errors to the API's -------------------------------------------------------------
def validated(model: type[M], data: dict[str, Any], *, query: bool = False) -> M:
    """``data`` as ``model``, or the ApiError a client gets for it: unknown names first, then missing
    ones, then the first invalid value (422, with the codes the API has always used)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _api_error(exc, query=query) from None


def _api_error(exc: ValidationError, *, query: bool) -> ApiError:
    errors = exc.errors(include_url=False, include_input=False)
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        if query:
            return ApiError(422, ErrorCode.UNKNOWN_PARAMETER, f"unknown query parameter {unknown[0]!r}")
        return ApiError(422, ErrorCode.UNKNOWN_FIELD, f"unknown field(s): {', '.join(unknown)}")
    missing = sorted(str(e["loc"][0]) for e in errors if e["type"] == "missing")
    if missing:
        return ApiError(422, ErrorCode.MISSING_FIELD, f"missing required field(s): {', '.join(missing)}")
    first = errors[0]
    name = str(first["loc"][0]) if first["loc"] else "body"
    try:
        code = ErrorCode(first["type"])
    except ValueError:  # one of pydantic's own checks (a bound, a type, an enum member)
        code = ErrorCode.INVALID_FIELD
    message = first["msg"]
    return ApiError(422, code, f"{name}: {message[:1].lower()}{message[1:]}")


def form_values(model: type[BaseModel], fields: dict[str, str]) -> dict[str, Any]:
    """Multipart fields are text: each becomes the JSON value it stands for, by the type its model
    field declares (integers and numbers as ASCII digits, objects as JSON text), before the model
    checks them like a JSON body. An unknown name is left for the model to refuse."""
    values: dict[str, Any] = {}
    for name, text in fields.items():
        field = model.model_fields.get(name)
        kind = _base_type(field.annotation) if field is not None else str
        try:
            if kind is int:
                values[name] = int_from_text(text)
            elif kind is float:
                values[name] = number_from_text(text)
            elif kind is dict:
                values[name] = parse_json(text.encode())
            else:
                values[name] = text
        except PydanticCustomError as exc:
            raise ApiError(422, ErrorCode.INVALID_FIELD, f"{name}: {exc.message()}") from None
    return values


def _base_type(annotation: Any) -> Any:
    """int for ``Annotated[int, ...] | None``; dict for ``dict[str, Any]``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is not None and type(None) in get_args(annotation):  # X | None
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        elif origin is not None:
            return origin
        else:
            return annotation


def query_params(request: Request) -> dict[str, str]:
    """The query string as a dict, refusing repeated parameters (a typo should not be a silent no-op
    filter; unknown names are the query model's to refuse)."""
    out: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in out:
            raise ApiError(422, ErrorCode.INVALID_PARAMETER, f"query parameter {key!r} given more than once")
        out[key] = value
    return out
