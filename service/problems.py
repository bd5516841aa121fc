"""Every error leaves the service as RFC 9457 problem+json.

The domain decides what went wrong (``domain/errors.py``: a stable ``code``, a message, the
offending ``field``); this module only maps the error's class to an HTTP status:
ValidationError 422, NotFound 404, NotPermitted 403 (naming the missing ``scope``),
Conflict 409 (ConcurrentWrite included), StaleVersion 412. A store that cannot be reached is
503 with Retry-After. Nothing here ever answers 5xx for bad input.

``type`` is ``urn:chidao-ledger:problem:<code>``: stable, and it never changes with the
wording of ``detail``. ``detail`` is NFC text without control characters, so Vietnamese
names in it survive any client.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import orjson
import structlog
from eventsourcing.persistence import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    PersistenceError,
    RecordConflictError,
)
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from domain.errors import (
    Conflict,
    DomainError,
    NotFound,
    NotPermitted,
    StaleVersion,
    UnreadableEvent,
    ValidationError,
)
from domain.persistence.url import StoreURLError

TYPE_PREFIX = "urn:chidao-ledger:problem:"
MEDIA_TYPE = "application/problem+json"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
log = structlog.get_logger("service")

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not permitted",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid request",
    500: "Internal error",
    503: "Service unavailable",
}


class ProblemError(Exception):
    """An error raised by the HTTP layer itself (auth, headers, limits, availability)."""

    def __init__(self, status: int, code: str, detail: str, *, field: str | None = None,
                 scope: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.scope = scope
        self.headers = headers or {}


class ProblemResponse(Response):
    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def safe_text(text: str) -> str:
    """NFC, no control characters, one line: safe to show and to log."""
    text = unicodedata.normalize("NFC", str(text))
    return " ".join(_CONTROL.sub(" ", text).split())


def problem(request: Request | None, status: int, code: str, detail: str, *,
            field: str | None = None, scope: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> ProblemResponse:
    body = problem_body(request, status, code, detail, field=field, scope=scope, **extra)
    return ProblemResponse(body, status_code=status, headers=headers)


def problem_body(request: Request | None, status: int, code: str, detail: str, *,
                 field: str | None = None, scope: str | None = None,
                 **extra: Any) -> dict[str, Any]:
    """The RFC 9457 object itself (also sent inside a stream that has already begun)."""
    body: dict[str, Any] = {
        "type": f"{TYPE_PREFIX}{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": safe_text(detail),
        "code": code,
    }
    if request is not None:
        body["instance"] = request.url.path
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            body["request_id"] = request_id
    if field:
        body["field"] = field
    if scope:
        body["scope"] = scope
    body.update({k: v for k, v in extra.items() if v is not None})
    if request is not None:
        request.state.error_code = code
    return body


def status_of(exc: DomainError) -> int:
    if isinstance(exc, UnreadableEvent):
        return 500  # the server's own record is damaged: no request could succeed
    if isinstance(exc, NotPermitted):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, StaleVersion):
        return 412
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, ValidationError):
        return 422
    return 422


def domain_problem(request: Request | None, exc: DomainError) -> ProblemResponse:
    return problem(request, status_of(exc), exc.code, exc.message, field=exc.field,
                   scope=getattr(exc, "scope", None))


def field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'tasks', 0, 'deadline') -> 'tasks[0].deadline'; ('header', 'if-match') ->
    'If-Match'."""
    parts = list(loc)
    where = parts.pop(0) if parts and parts[0] in ("body", "query", "path", "header") else None
    if where == "header" and parts:
        return "-".join(p.capitalize() for p in str(parts[0]).split("-"))
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or (where or "body")


def _validation_problem(request: Request, exc: RequestValidationError) -> ProblemResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem(request, 400, "malformed-json",
                       "the request body is not valid JSON (UTF-8)", field="body")
    listed = []
    for error in errors[:20]:
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        listed.append({"field": field_of(error.get("loc", ())), "message": safe_text(message),
                       "type": error.get("type")})
    first = listed[0] if listed else {"field": "body", "message": "invalid"}
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    code = "text-not-nfc" if "not in Unicode NFC" in first["message"] else "validation-error"
    return problem(request, 422, code, f"{first['field']}: {first['message']}{more}",
                   field=first["field"], errors=listed)


def install(app: FastAPI, retry_after: int) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError):
        if isinstance(exc, UnreadableEvent):
            log.error("unreadable_event", error=safe_text(str(exc))[:500])
        return domain_problem(request, exc)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError):
        return problem(request, exc.status, exc.code, exc.detail, field=exc.field,
                       scope=exc.scope, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return _validation_problem(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        codes = {404: "no-such-route", 405: "method-not-allowed", 413: "body-too-large"}
        return problem(request, exc.status_code, codes.get(exc.status_code, "http-error"),
                       str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(PersistenceError)
    async def _store(request: Request, exc: PersistenceError):
        if isinstance(exc, RecordConflictError):
            return problem(request, 409, "concurrent-write",
                           "another write was saved first; reload and retry")
        if isinstance(exc, OperationalError | InterfaceError | DatabaseError):
            log.warning("store_unavailable", error=safe_text(str(exc))[:300])
            return problem(request, 503, "store-unavailable",
                           "the ledger store is not reachable right now; retry later",
                           headers={"Retry-After": str(retry_after)})
        log.error("store_error", error=safe_text(str(exc))[:300])
        return problem(request, 503, "store-error", "the ledger store failed; retry later",
                       headers={"Retry-After": str(retry_after)})

    try:
        from projections.runner import OutdatedProjection
    except ImportError:  # pragma: no cover - projections are part of the package
        OutdatedProjection = None

    if OutdatedProjection is not None:
        @app.exception_handler(OutdatedProjection)
        async def _outdated(request: Request, exc: Exception):
            return problem(request, 503, "read-models-outdated",
                           f"{safe_text(str(exc))}; an operator must rebuild it",
                           headers={"Retry-After": str(retry_after)})

    @app.exception_handler(StoreURLError)
    async def _url(request: Request, exc: StoreURLError):
        return problem(request, 503, "store-misconfigured", str(exc),
                       headers={"Retry-After": str(retry_after)})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled_error", error_type=type(exc).__name__)
        return problem(request, 500, "internal-error",
                       "an unexpected error occurred; it has been logged")
