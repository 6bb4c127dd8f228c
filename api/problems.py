"""Every refusal as ``application/problem+json`` (RFC 9457), mapped in this one place."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import Forbidden, Unauthorized
from domain.errors import (
    Busy,
    Conflict,
    DamagedEvent,
    InvalidCommand,
    LedgerError,
    NotFound,
    UnvouchedContent,
    ValidationFailed,
    VersionConflict,
)
from domain.serialization import DATA_MODELS
from projections.checkpoints import SigningKeyError
from projections.log import LogReader

__all__ = ["field_problems", "install_problem_handlers", "problem"]

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Unprocessable request",
    500: "Internal error",
    503: "Service unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {
        "type": "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **{k: v for k, v in extra.items() if v is not None},
    }
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def _position_of(log: LogReader, stream_id: str, version: int) -> int | None:
    """Where a damaged event sits in the log, read without decoding it through the domain."""
    try:
        entries = log.stream(stream_id)
    except DamagedEvent as damaged:
        return damaged.position
    return next((e.position for e in entries if e.version == version), None)


def _status_of(error: LedgerError) -> int:
    if isinstance(error, Busy):
        return 503
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Conflict):
        return 409
    if isinstance(error, InvalidCommand):
        return 422
    return 422


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    if len(parts) > 1 and parts[0] in DATA_MODELS:
        parts = parts[1:]  # a tagged union names its tag first: contact_made.summary -> summary
    return ".".join(parts) or "body"


def field_problems(errors: Any) -> list[dict[str, str]]:
    """pydantic's errors as ``[{field, message}]``, the field dotted as the API names it."""
    found = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        message = str(error.get("msg", "is not valid"))
        if error.get("type") == "json_invalid":
            message = "the body is not valid JSON"
        found.append({"field": _location(loc), "message": message})
    return found


def _answer(request: Request, status: int, detail: str, **extra: Any) -> Response:
    """problem+json for the API; a page for a person when a page was asked for."""
    render = getattr(request.app.state, "html_error", None)
    path = request.url.path
    if render is not None and not path.startswith("/v1/") and path != "/healthz":
        response: Response = render(request, status, detail)
        return response
    return problem(status, detail, **extra)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, error: LedgerError) -> Response:
        extra: dict[str, Any] = {}
        if isinstance(error, ValidationFailed):
            extra["errors"] = [{"field": p.field, "message": p.message} for p in error.problems]
            extra["field"] = error.problems[0].field if error.problems else None
        if isinstance(error, VersionConflict):
            extra["current_version"] = error.current_version
        if isinstance(error, UnvouchedContent):
            extra["events"] = [
                {
                    "position": e.position,
                    "stream_id": e.stream_id or None,
                    "version": e.version,
                    "problem": e.problem,
                }
                for e in error.events
            ]
        headers = None
        if isinstance(error, Busy):
            headers = {"Retry-After": str(error.retry_after)}
        return _answer(request, _status_of(error), error.detail, headers=headers, **extra)

    @app.exception_handler(DamagedEvent)
    async def damaged_event(request: Request, error: DamagedEvent) -> Response:
        position = error.position
        if position is None:  # read through an aggregate: the log's reader knows where it is
            services = request.app.state.services
            position = await run_in_threadpool(
                _position_of, services.keeper.log, error.stream_id, error.version
            )
        where = f"at position {position}" if position is not None else "in the log"
        return problem(
            500,
            f"The stored event {where} (stream {error.stream_id}, version {error.version}) no "
            f"longer decodes: {error.reason}. Storage may be damaged; nothing was recorded. "
            "The rest of the ledger is served; `pledger verify` lists every damaged event.",
            title="Damaged event",
            position=position,
            stream_id=error.stream_id,
            version=error.version,
        )

    @app.exception_handler(SigningKeyError)
    async def unusable_key(request: Request, error: SigningKeyError) -> Response:
        return _answer(
            request,
            500,
            f"The ledger cannot sign: {error}. Nothing was recorded; the operator must fix the "
            "signing key (PLEDGER_SIGNING_KEY_FILE).",
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        problems = field_problems(error.errors())
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        first = problems[0]["field"] if problems else None
        return _answer(
            request, 422, detail or "The request is not valid.", errors=problems, field=first
        )

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, error: Unauthorized) -> Response:
        return _answer(request, 401, error.detail)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, error: Forbidden) -> Response:
        return _answer(request, 403, error.detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        return _answer(request, error.status_code, str(error.detail))
