"""The REST front's edge: request ids, error bodies, JSON bodies and query strings, the way the Managed Agents API
and the `anthropic` SDK expect them.

- Every response carries a `request-id` header; an error answers
  `{"type":"error","error":{"type":...,"message":...},"request_id":"req_..."}` with the status the core's
  `ServerError` names (`error_type`, `http_status`), so the SDK raises its matching exception class.
- A JSON body is read with a size cap (413 `request_too_large` past it) and validated against a request model;
  a failure lists each problem as `field: what is wrong`, like the MCP tools do.
- Query strings: arrays come as `types[]=a&types[]=b` (the SDK's form) or repeated `types=`, date filters as
  `created_at[gt]=` (read as `created_at_gt`); unknown parameters (`beta=true`, say) are ignored.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import types
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.core.errors import ErrorType, ServerError
from server.core.validation import describe_problems
from vault.errors import VaultError

__all__ = [
    "MAX_JSON_BYTES",
    "ApiError",
    "Handler",
    "QueryModel",
    "RequestModel",
    "endpoint",
    "error_response",
    "http_error",
    "json_response",
    "read_body",
    "read_query",
]

logger = logging.getLogger(__name__)

MAX_JSON_BYTES = 32 * 1024 * 1024
"""A JSON body's cap: a message may carry base64 images and documents; past this is a 413."""

Handler = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)


class RequestModel(BaseModel):
    """A JSON body: unknown fields are refused (a typo, or a hosted-API feature this server lacks, is an error
    that says so, not a silent no-op)."""

    model_config = ConfigDict(extra="forbid")


class QueryModel(BaseModel):
    """Query parameters: strings coerced to their types; unknown ones ignored (`beta=true` and the like)."""

    model_config = ConfigDict(extra="ignore")


class ApiError(Exception):
    """An error the REST front answers itself (a bad body, an unknown route parameter)."""

    def __init__(self, status: int, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


def _request_id() -> str:
    return "req_" + secrets.token_hex(12)


def error_response(status: int, error_type: ErrorType, message: str, headers: dict[str, str] | None = None) -> Response:
    request_id = _request_id()
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
    return JSONResponse(body, status_code=status, headers={"request-id": request_id, **(headers or {})})


def json_response(value: BaseModel | dict[str, Any] | list[Any], status: int = 200) -> Response:
    body = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return JSONResponse(body, status_code=status, headers={"request-id": _request_id()})


async def http_error(_request: Request, exc: Exception) -> Response:
    """Starlette's own refusals under `/v1` (no such route, a method the route lacks) as the API's error body."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return error_response(404, "not_found_error", "no such route; the REST API's routes are under /v1")
    if status == 405:
        return error_response(405, "invalid_request_error", "this route does not take that method")
    return error_response(status, "api_error" if status >= 500 else "invalid_request_error", str(exc))


def endpoint(handler: Handler) -> Handler:
    """Wraps a route handler: every failure becomes the API's error body; a crash is logged, never shown."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.error_type, str(exc))
        except ServerError as exc:
            if exc.http_status >= 500:
                logger.warning("%s %s: %s", request.method, request.url.path, exc)
            return error_response(exc.http_status, exc.error_type, str(exc))
        except VaultError as exc:
            return error_response(400, "invalid_request_error", str(exc))
        except ValidationError as exc:
            return error_response(400, "invalid_request_error", describe_problems(exc, "invalid request"))
        except Exception as exc:
            logger.exception("%s %s crashed", request.method, request.url.path)
            what = "the store failed" if isinstance(exc, sqlite3.Error) else "the server failed unexpectedly"
            return error_response(
                500,
                "api_error",
                f"{what} ({type(exc).__name__}); the traceback is in the server's log. Check whether the call "
                "took effect before you retry it",
            )

    guarded.__name__ = handler.__name__
    guarded.__doc__ = handler.__doc__
    return guarded


async def read_raw(request: Request, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """The request body, refused with 413 once it passes `max_bytes` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "request_too_large", f"the body is {declared} bytes; the limit is {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, "request_too_large", f"the body is over {max_bytes} bytes, the limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: Request, model: type[M], max_bytes: int = MAX_JSON_BYTES) -> M:
    """The JSON body as `model`; an empty body reads as `{}`."""
    raw = await read_raw(request, max_bytes)
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_request_error", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request_error", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request_error", describe_problems(exc, "invalid request")) from exc


def read_query(request: Request, model: type[M]) -> M:
    """The query string as `model`: `name[]` and repeated names collect into lists, `name[op]` reads as
    `name_op`."""
    fields = model.model_fields
    values: dict[str, Any] = {}
    for raw_key, value in request.query_params.multi_items():
        key = raw_key
        if key.endswith("[]"):
            key = key[:-2]
        elif key.endswith("]") and "[" in key:
            base, _, op = key[:-1].partition("[")
            key = f"{base}_{op}"
        field = fields.get(key)
        if field is None:
            continue
        if _is_list(field.annotation):
            values.setdefault(key, []).append(value)
        else:
            values[key] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request_error", describe_problems(exc, "invalid query")) from exc


def _is_list(annotation: Any) -> bool:
    """Whether a field takes a list (`list[str]`, `list[str] | None`, annotated or not)."""
    origin = get_origin(annotation)
    if origin is list:
        return True
    if origin is Annotated:
        return _is_list(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(_is_list(arg) for arg in get_args(annotation))
    return False
