"""The event journal: pages from a position, and a live Server-Sent Events feed.

The feed polls the store (the SQLite recorder has no notifications, DESIGN §7), so it works
on both stores. Each event is one SSE message whose ``id`` is its global position: a client
that reconnects with ``Last-Event-ID`` resumes exactly after the last event it saw. A
connection ends after ``LEDGER_API_FEED_MAX_SECONDS`` (clients reconnect, as EventSource
does by itself) or after ``limit`` events.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import orjson
import structlog
from eventsourcing.persistence import PersistenceError
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from domain.application import read_journal
from domain.errors import UnreadableEvent
from service.deps import Reader, ServicesDep
from service.openapi import READ_ERRORS
from service.problems import ProblemError, problem_body, safe_text, status_of
from service.schemas import JournalPage

router = APIRouter(prefix="/v1", tags=["journal"])
log = structlog.get_logger("service")
PAGE = 500


@router.get("/events", response_model=JournalPage, responses=READ_ERRORS)
def journal(svc: ServicesDep, _: Reader,
            after: Annotated[int, Query(ge=0, le=2**62, description="Events after this "
                                        "position.")] = 0,
            limit: Annotated[int, Query(ge=1, le=10_000)] = 100):
    """Stored events in global order, oldest first. `limit` is capped by the service
    (LEDGER_API_JOURNAL_MAX_LIMIT, default 1000)."""
    limit = min(limit, svc.settings.journal_max_limit)
    entries = read_journal(svc.ledger, after=after, limit=limit)
    head = svc.ledger.recorder.max_notification_id() or 0
    return {"events": [e.as_json() for e in entries], "after": after,
            "next_after": entries[-1].position if entries else after, "head": head}


def _start_position(after: int | None, last_event_id: str | None) -> int | None:
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not text.isdigit() or len(text) > 18:
            raise ProblemError(422, "validation-error",
                               "Last-Event-ID must be an event position (a whole number)",
                               field="Last-Event-ID")
        return int(text)
    return after


@router.get(
    "/feed",
    response_class=StreamingResponse,
    responses={**READ_ERRORS, 200: {
        "content": {"text/event-stream": {"example": (
            'id: 96\nevent: Task.ProgressReported\ndata: {"position":96,'
            '"type":"Task.ProgressReported",...}\n\n')}},
        "description": "A stream of Server-Sent Events, one per stored event."}},
)
async def feed(
    request: Request, svc: ServicesDep, _: Reader,
    after: Annotated[int | None, Query(ge=0, le=2**62, description=(
        "Start after this position (default: the newest event, i.e. only new events)."))] = None,
    limit: Annotated[int | None, Query(ge=1, le=1_000_000, description=(
        "Close the stream after this many events (for scripts)."))] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
):
    """Live feed of new events as Server-Sent Events (`id` = position, `event` = type,
    `data` = the event as in /v1/events). Resume with `Last-Event-ID`. A stored event that
    can no longer be read ends the stream with `event: error` (`data`: problem+json)."""
    settings = svc.settings
    ledger = svc.ledger
    start = _start_position(after, last_event_id)
    if start is None:
        start = await run_in_threadpool(ledger.recorder.max_notification_id) or 0

    async def stream():
        position = start
        sent = 0
        began = last_beat = time.monotonic()
        yield f"retry: {max(1000, int(settings.feed_poll_seconds * 1000))}\n: from {start}\n\n"
        while True:
            if await request.is_disconnected():
                return
            try:
                entries = await run_in_threadpool(read_journal, ledger, position, PAGE)
            except PersistenceError as exc:
                log.warning("feed_store_error", error=str(exc)[:200])
                return
            except UnreadableEvent as exc:  # say so, rather than drop the connection
                log.error("unreadable_event", error=safe_text(str(exc))[:500])
                body = problem_body(request, status_of(exc), exc.code, exc.message)
                yield f"event: error\ndata: {orjson.dumps(body).decode()}\n\n"
                return
            for entry in entries:
                data = orjson.dumps(entry.as_json()).decode()
                yield f"id: {entry.position}\nevent: {entry.event_type}\ndata: {data}\n\n"
                position = entry.position
                sent += 1
                if limit is not None and sent >= limit:
                    return
            if len(entries) == PAGE:
                continue
            now = time.monotonic()
            if now - began >= settings.feed_max_seconds:
                return
            if now - last_beat >= settings.feed_heartbeat_seconds:
                yield ": keep-alive\n\n"
                last_beat = now
            await asyncio.sleep(settings.feed_poll_seconds)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
