"""Request ids, JSON request logs (structlog), Prometheus metrics, and the body size limit.

One pure ASGI middleware does all four so that streaming responses (the SSE feed) pass
through untouched. Each request gets an id (the caller's ``X-Request-ID`` if it is sane,
else a new one), echoed in the response and used as the events' correlation id; one JSON
log line records request id, actor, route, status, duration and the position written.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Any

import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.problems import problem

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def configure_logging(level: str = "info") -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(
                o, default=str).decode()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )


class Metrics:
    """Per-app registry, so that several apps (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ledger_http_requests_total", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.duration = Histogram("ledger_http_request_duration_seconds",
                                  "Time to answer HTTP requests", ["method", "route"],
                                  registry=self.registry)
        self.events = Counter("ledger_api_events_written_total",
                              "Events stored by API commands (replays excluded)",
                              registry=self.registry)
        self.head = Gauge("ledger_head_position", "Position of the newest stored event",
                          registry=self.registry)
        self.lag = Gauge("ledger_projection_lag_events",
                         "Events the slowest read model is behind (-1: unknown)",
                         registry=self.registry)


class RequestMiddleware:
    def __init__(self, app: Any, *, metrics: Metrics, max_body_bytes: int,
                 access_log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.access_log = access_log
        self.log = structlog.get_logger("service.access")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        # A caller's id is echoed and logged, so one that looks like a bearer token (a
        # client that mixed up its headers) is replaced rather than written to the logs.
        sane = _REQUEST_ID.match(given) and not given.startswith("cdl_")
        request_id = given if sane else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        too_large = await self._too_large(scope, headers)
        try:
            if too_large:
                await self._refuse(scope, receive, send_wrapper, request_id)
            else:
                await self.app(scope, self._limited(receive), send_wrapper)
        except _BodyTooLarge:
            await self._refuse(scope, receive, send_wrapper, request_id)
        finally:
            self._record(scope, state, status_holder["status"], started, request_id)

    async def _too_large(self, scope, headers) -> bool:
        length = headers.get("content-length")
        if length is None:
            return False
        return not length.isdigit() or int(length) > self.max_body

    def _limited(self, receive):
        seen = 0

        async def wrapped():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _BodyTooLarge(self.max_body)
            return message

        return wrapped

    async def _refuse(self, scope, receive, send, request_id):
        from starlette.requests import Request

        request = Request(scope, receive)
        response = problem(request, 413, "body-too-large",
                           f"the request body is larger than {self.max_body} bytes",
                           field="body")
        await response(scope, receive, send)

    def _record(self, scope, state, status, started, request_id) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        self.metrics.requests.labels(method, template, str(status)).inc()
        self.metrics.duration.labels(method, template).observe(elapsed)
        position = state.get("position")
        if state.get("events_written"):
            self.metrics.events.inc(state["events_written"])
        if self.access_log:
            self.log.info("request", request_id=request_id, method=method, route=template,
                          path=scope.get("path"), status=status,
                          duration_ms=round(elapsed * 1000, 2), actor=state.get("actor"),
                          role=state.get("role"), position=position,
                          error=state.get("error_code"))


class _BodyTooLarge(StarletteHTTPException):
    """Raised while the body is read; FastAPI passes HTTP exceptions through unchanged."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")
