"""The FastAPI application factory.

``create_app()`` reads Settings from the environment and opens one Ledger (one connection
pool) per process when the app starts; ``ledger serve`` runs it under uvicorn, once per
worker process. Tests pass their own ledger (with a controlled clock) and read models.

Routes are sync functions: the eventsourcing library has no asyncio API (DESIGN §7), so
FastAPI runs them in its thread pool. Only the SSE feed is async (it sleeps between polls).
"""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from domain.application import Ledger
from domain.persistence.breaker import install_breaker
from service import problems
from service.body_guard import BodyGuard
from service.cached_reads import CachedReads
from service.collector import rarer_full_collections
from service.deps import Services
from service.idempotency import IdempotencyStore
from service.observability import Metrics, RequestMiddleware, configure_logging
from service.read_models import default_read_models
from service.routers import (
    agencies,
    directives,
    integrity,
    journal,
    ops,
    queries,
    tasks,
    tokens,
)
from service.settings import Settings
from service.shared_answers import SharedAnswers
from service.storage import ServiceTables
from service.tokens import TokenStore

_DEFAULT = object()

DESCRIPTION = """\
The ledger of directives (văn bản chỉ đạo, điều hành) of a provincial People's Committee and
the obligations they create, for agency systems.

* Authenticate with `Authorization: Bearer <token>` (tokens: `ledger token create`).
* Every POST accepts `Idempotency-Key`: a retry returns the first response, stores nothing new.
* Task and directive reads carry an `ETag`; send it as `If-Match` on writes (412 when stale).
* Writes answer with the `position` of their last event; pass it as `min_position` to queries.
* Errors are RFC 9457 `application/problem+json` with a stable `type` and `code`.

* `/v1/integrity` gives the hash chain's head and latest signed checkpoint;
  `/v1/integrity/proof/{position}` the proof of one event (see docs/integrity.md).
"""


class _EmbeddedWorker:
    """The projection worker on a thread of the API process (``--with-worker``)."""

    def __init__(self, ledger: Ledger) -> None:
        from projections.runner import run_worker

        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run_worker, args=(ledger,), kwargs={"stop": self._stop, "poll": 0.5},
            name="ledger-embedded-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _embedded_worker(ledger: Ledger) -> _EmbeddedWorker:
    return _EmbeddedWorker(ledger)


def create_app(settings: Settings | None = None, *, ledger: Ledger | None = None,
               read_models: Any = _DEFAULT) -> FastAPI:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = ledger is None
        with rarer_full_collections(enabled=own):
            async with _lifespan(app, own):
                yield

    @asynccontextmanager
    async def _lifespan(app: FastAPI, own: bool):
        the_ledger = Ledger(
            settings.database_url, group_commit=settings.group_commit,
            agency_cache_seconds=settings.cache_seconds,
        ) if own else ledger
        # Fail fast (503) while PostgreSQL is unreachable; recover by itself.
        install_breaker(the_ledger.recorder.datastore)
        try:
            tables = ServiceTables(the_ledger)
            tables.create()
            shared = SharedAnswers(tables)
            shared.create()
            models = default_read_models(the_ledger) if read_models is _DEFAULT else read_models
            app.state.services = Services(
                settings=settings, ledger=the_ledger, tables=tables,
                tokens=TokenStore(tables, cache_seconds=settings.cache_seconds),
                idempotency=IdempotencyStore(tables),
                read_models=models, metrics=metrics, shared_answers=shared,
            )
            worker = _embedded_worker(the_ledger) if settings.embedded_worker else None
            try:
                yield
            finally:
                if worker is not None:
                    worker.stop()
        finally:
            if own:
                the_ledger.close()

    app = FastAPI(
        title="chidao-ledger API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    problems.install(app, settings.retry_after_seconds)
    for module in (agencies, directives, tasks, queries, journal, integrity, tokens, ops):
        app.include_router(module.router)
    app.add_middleware(CachedReads)  # innermost: sends cached default obligations pages
    app.add_middleware(BodyGuard)  # inside RequestMiddleware: sees the size-capped body
    app.add_middleware(RequestMiddleware, metrics=metrics,
                       max_body_bytes=settings.max_body_bytes, access_log=settings.access_log)
    return app
