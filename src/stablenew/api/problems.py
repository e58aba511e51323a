"""Errors as answers: one handler maps StableNew's error tree to HTTP statuses.

Every error answer is `{"detail": ..., "type": "<error class>"}`: `detail` is a list of
messages for a 422 (each naming the field, or the file, row and token of a pack) and one
message otherwise. A route that must tell "no such job" (404) from "not in a state for that"
(409) looks the job up first (`deps.job_id`), so nothing here reads a message to decide.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from stablenew.api.security import BodyTooLarge
from stablenew.errors import (
    BackendError,
    BackendStartError,
    HomeOwnedError,
    InputError,
    QueueError,
    StableNewError,
    StoreError,
)

log = logging.getLogger("stablenew.api")


def status_of(exc: StableNewError) -> int:
    if isinstance(exc, InputError):
        return 422  # bad input: nothing was queued or changed
    if isinstance(exc, QueueError | HomeOwnedError):
        return 409  # the job (or the home) is not in a state for that
    if isinstance(exc, StoreError | BackendStartError):
        return 503  # the database or the backend cannot be used right now
    if isinstance(exc, BackendError):
        return 502  # the backend answered something unusable
    return 500


def error_body(detail: object, kind: str) -> dict[str, object]:
    return {"detail": detail, "type": kind}


def message_of(err: dict[str, Any]) -> str:
    """One validation error as a line: where, then what."""
    if err.get("type") == "json_invalid":  # a position in the text, not a field
        why = err.get("ctx", {}).get("error", "")
        return f"body: not valid JSON at character {err['loc'][-1]}: {why}"
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: " + str(err.get("msg", "")).removeprefix("Value error, ")


def install(app: FastAPI) -> None:
    @app.exception_handler(StableNewError)
    async def _stablenew(request: Request, exc: StableNewError) -> JSONResponse:
        status = status_of(exc)
        detail: object = [str(exc)] if status == 422 else str(exc)
        return JSONResponse(error_body(detail, type(exc).__name__), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        messages = [message_of(err) for err in exc.errors()]
        return JSONResponse(error_body(messages, "ValidationError"), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(exc.detail, "HTTPException"),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(error_body(str(exc), "BodyTooLarge"), status_code=413)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body(f"internal error ({type(exc).__name__})", type(exc).__name__),
            status_code=500,
        )
