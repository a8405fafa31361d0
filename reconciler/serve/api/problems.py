"""Errors as RFC 9457 problem details (`application/problem+json`), for every 4xx we return."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from reconciler.errors import NotHeld, StoreUnavailable

logger = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...], kind: str) -> str:
    """``("body", "booted", "checksum")`` -> ``booted.checksum``; query params keep ``query.``.

    For unparseable JSON pydantic's loc holds a character offset, which names no field.
    """
    if kind == "json_invalid":
        return "body"
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(tuple(e["loc"]), e["type"]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return problem(422, "Invalid request", f"invalid fields: {fields}", errors=errors)

    @app.exception_handler(StoreUnavailable)
    async def store_down(_: Request, exc: StoreUnavailable) -> JSONResponse:
        logger.error("store unavailable: %s", exc)
        return problem(
            503, "Service unavailable", "the state database is unavailable; report again later"
        )

    @app.exception_handler(NotHeld)
    async def not_held(_: Request, exc: NotHeld) -> JSONResponse:
        # Replicas: the group's lease is moving (its holder died, or is being rebalanced).
        response = problem(503, "Service unavailable", f"{exc}; report again shortly")
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error while answering a request")
        return problem(500, "Internal error", "an unexpected error occurred; it is logged")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, _TITLES.get(exc.status_code, "Error"), str(exc.detail))


_TITLES = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Content too large",
    415: "Unsupported media type",
}
