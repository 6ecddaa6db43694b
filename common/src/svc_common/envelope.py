"""The response envelope {"status", "data", "message"} and the handlers that keep errors in it."""

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Generic, Literal, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger(__name__)

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    """Every JSON body the services return."""

    status: Literal["success", "error"] = "success"
    data: T | None = None
    message: str | None = None


class ListMeta(BaseModel):
    """Paging details that travel beside a list."""

    total: int
    limit: int
    offset: int


class ListEnvelope(Envelope[list[T]], Generic[T]):
    """A list response: `data` stays a list, paging goes in `meta`."""

    meta: ListMeta


class ErrorEnvelope(Envelope[Any]):
    """The shape of every error, for the OpenAPI schema."""

    status: Literal["success", "error"] = "error"


class EnvelopeResponse(Response):
    """A JSON response whose body is already an envelope."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(
    status_code: int,
    message: str | None = None,
    *,
    data: Any = None,
    headers: Mapping[str, str] | None = None,
) -> EnvelopeResponse:
    """An error in the envelope; the message defaults to the status phrase."""
    body = {
        "status": "error",
        "data": data,
        "message": message or HTTPStatus(status_code).phrase,
    }
    return EnvelopeResponse(body, status_code=status_code, headers=headers)


# Documented once so every route's schema shows the error shape; 503 is a database or Redis
# the route needs being unreachable (with Retry-After).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope, "description": HTTPStatus(code).phrase}
    for code in (401, 404, 422, 503)
}


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI answers 400 for a JSON body that is not UTF-8 but 422 for any other bad JSON;
        # both are the same mistake to a client, so both get the 422 the API documents.
        problem = {"loc": ["body"], "msg": "JSON body is not valid UTF-8", "type": "json_invalid"}
        return error_response(422, "Invalid request", data=[problem])
    message = exc.detail if isinstance(exc.detail, str) else None
    data = None if isinstance(exc.detail, str) else exc.detail
    if exc.status_code == 404 and message == "Not Found":
        message = "Resource not found"
    return error_response(exc.status_code, message, data=data, headers=exc.headers)


def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # Only location, message and type: echoing the input back would reflect hostile payloads.
    problems = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return error_response(422, "Invalid request", data=problems)


async def _validation_error_async(request: Request, exc: Exception) -> Response:
    return _validation_error(request, exc)


async def _unhandled(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "Internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Route FastAPI's own 404/405/422 and any crash through the envelope."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error_async)
    app.add_exception_handler(Exception, _unhandled)
