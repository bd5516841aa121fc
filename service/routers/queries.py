"""Queries answered by the projections' read models (DESIGN §5): obligations of an agency,
every agency's obligation counts, accountability of agency heads, the audit history of an
entity.

Read-your-writes: a write answers with the ``position`` of its last event; pass it as
``min_position`` and the query waits (up to LEDGER_API_READ_WAIT_SECONDS) until the read
models have folded that event, or answers 503 with Retry-After.

Two time axes (DESIGN §5): ``as_of`` is recorded time (what the ledger held then; ISO 8601
moment, or a date meaning the end of that day in Vietnam); ``effective_on`` is the day
statuses are judged on ("what was overdue on 31/5 as we know it today").
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, NamedTuple
from uuid import UUID

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from domain.clock import local_date, parse_moment, plausible_day_problem
from service.deps import Reader, Services, ServicesDep
from service.openapi import READ_ERRORS
from service.problems import ProblemError
from service.read_models import (
    Answer,
    ReadModelsPort,
    accepts_gzip,
    jsonable,
    stretched,
    token_position,
)
from service.schemas import QueryDay, QueryResult
from service.shared_answers import SharedAnswer

router = APIRouter(prefix="/v1", tags=["queries"])

AsOf = Annotated[str | None, Query(max_length=40, examples=["2024-05-31"], description=(
    "Recorded-time axis: the ledger's state at this moment (ISO 8601; a date means the end "
    "of that day in Vietnam)."))]
MinPosition = Annotated[int | None, Query(ge=0, le=2**62, description=(
    "Wait until the read models have folded this position (from a write's response)."))]
AGENCY_CODE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
_CODE = re.compile(AGENCY_CODE)
# The default page of obligations: the endpoint's default and the key under which
# service/cached_reads.py looks for the answer to a request without query parameters.
OBLIGATIONS_PAGE = 500
_PERIOD = re.compile(r"^\d{4}(-(Q[1-4]|H[12]))?$")


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = parse_moment(value)
    except (ValueError, OverflowError) as exc:
        raise ProblemError(422, "validation-error", f"as_of: {exc}", field="as_of") from None
    problem = plausible_day_problem(local_date(moment))
    if problem:
        raise ProblemError(422, "validation-error", f"as_of: {problem}", field="as_of")
    return moment


def _read_models(svc: Services, min_position: int | None) -> ReadModelsPort:
    models = svc.read_models
    retry = {"Retry-After": str(svc.settings.retry_after_seconds)}
    if models is None:
        raise ProblemError(503, "read-models-unavailable",
                           "the read models (projections) are not available in this "
                           "deployment", headers=retry)
    if min_position is not None and not models.wait_for(min_position,
                                                        svc.settings.read_wait_seconds):
        raise ProblemError(503, "read-models-behind",
                           f"the read models have not reached position {min_position} yet; "
                           "retry shortly", headers=retry)
    return models


def _check_entity_id(entity_type: str, entity_id: str) -> None:
    """Directives and tasks are named by UUID, agencies by code: anything else is 422 here
    rather than an empty (or failing) answer from the read models."""
    if entity_type == "agency":
        if not _CODE.match(entity_id):
            raise ProblemError(422, "validation-error", "entity_id: not an agency code",
                               field="entity_id")
        return
    try:
        UUID(entity_id)
    except ValueError:
        raise ProblemError(422, "validation-error", f"entity_id: a {entity_type} id is a UUID",
                           field="entity_id") from None


def _answer(query: dict[str, Any], data: Any) -> dict[str, Any]:
    return {"query": jsonable({k: v for k, v in query.items() if v is not None}),
            "data": jsonable(data)}




def _respond(svc: Services, models: ReadModelsPort, projection: str, key: tuple,
             compute: Callable[[], dict[str, Any]], *, min_position: int | None,
             gzip_ok: bool, overview: float = 0.0) -> Response:
    """The answer as JSON bytes, from the cache when the projection has not moved. The day
    statuses are judged on is part of ``key`` (a default of 'today' changes at midnight).

    Whether it has moved is asked of the database at most every ``freshness_seconds`` per
    process, except when the caller waits for its own write (``min_position``): then the
    position just waited for must be the one answered from.

    ``overview``: seconds an answer may be sent again though the projection has moved since
    (its ``as_of`` says from which position), unless it is older than the position the
    caller waits for: for an answer that takes seconds to compute, which each new event
    would otherwise start again. Past that window (up to twice it) the answer is still
    sent, and computed again on a thread meanwhile: a polling dashboard does not wait.
    Such answers are shared by the server processes (``_Overview``)."""

    def current() -> _Current:
        freshness = getattr(models, "freshness", None)
        max_age = svc.settings.freshness_seconds if min_position is None else 0.0
        token = freshness(projection, max_age) if freshness is not None else None
        if token is None:  # not cached: compressed only for a client that takes it
            body = orjson.dumps(compute())
            return _Current(None, Answer.of(body) if gzip_ok else Answer(body), 0.0)
        started = time.monotonic()
        answer = svc.answers.get_or_compute((projection, token, *key), compute)
        took = time.monotonic() - started
        if overview > 0:
            svc.answers.remember(key, token, answer, took=took)
        return _Current(token, answer, took)

    if overview <= 0:
        return _send(current().answer, gzip_ok)
    return _send(_Overview(svc, key, overview, min_position, current).answer(), gzip_ok)


_NOT_READ = object()  # (the shared answer has not been read yet)


class _Current(NamedTuple):
    token: Any  # the projection's freshness token (None: the models have none)
    answer: Answer
    took: float  # seconds it took (~0 when it was cached)


class _Overview:
    """An overview's answer: this process's latest while it is young enough, else the one
    another server process published (service/shared_answers.py), else computed here and
    published; past its window it is sent while computed again on a thread. The window
    stretches to ``OVERVIEW_STRETCH`` times the answer's computation (read_models.py)."""

    def __init__(self, svc: Services, key: tuple, window: float, min_position: int | None,
                 current: Callable[[], _Current]) -> None:
        self.svc, self.key, self.window = svc, key, window
        self.min_position, self.current = min_position, current
        self.shared = svc.shared_answers

    def _reaches(self, token: Any) -> bool:
        if self.min_position is None:
            return True
        position = token_position(token)
        return position is not None and position >= self.min_position

    def answer(self) -> Answer:
        answers = self.svc.answers
        recent = answers.latest(self.key, self.window)
        found: SharedAnswer | object | None = _NOT_READ
        if recent is None and self.shared is not None:
            found = self.shared.fetch(self.key)
            if found is not None and self._reaches(found.token):
                answers.remember(self.key, found.token, found.answer,
                                 age=self.shared.age(found), took=found.took)
                recent = answers.latest(self.key, self.window)
        if recent is not None and self._reaches(recent[0]):
            _, answer, due = recent
            if due:
                answers.revalidate(self.key, self.refresh)
            return answer
        return self.refresh(found)

    def refresh(self, found: SharedAnswer | object | None = _NOT_READ) -> Answer:
        """A new answer: another process's if it is younger than the window, else one
        computed here (or by the process that claimed it meanwhile) and published.
        ``found``: the shared answer as just read, if it was (it is not read twice)."""
        shared, answers = self.shared, self.svc.answers
        if shared is None:
            return self.current().answer
        if found is _NOT_READ:
            found = shared.fetch(self.key)
        if found is not None and shared.age(found) < stretched(self.window, found.took) \
                and self._reaches(found.token):
            answers.remember(self.key, found.token, found.answer, age=shared.age(found),
                             took=found.took)
            return found.answer
        claimed = shared.claim(self.key, last_took=found.took if found is not None else 0.0)
        if not claimed:  # another process is computing it: its answer, when it comes
            newer = shared.await_newer(self.key, found.computed_at if found else None)
            if newer is not None and self._reaches(newer.token):
                answers.remember(self.key, newer.token, newer.answer,
                                 age=shared.age(newer), took=newer.took)
                return newer.answer
        started = shared.now()
        try:
            done = self.current()
        except BaseException:
            if claimed:
                shared.release(self.key)
            raise
        if done.token is not None:
            shared.publish(self.key, done.token, done.answer, computed_at=started,
                           took=done.took)
        elif claimed:
            shared.release(self.key)
        return done.answer


def _send(answer: Answer, gzip_ok: bool) -> Response:
    """gzipped to a client that accepts it (compressed once per cached answer)."""
    if answer.gzipped is None:
        return Response(content=answer.body, media_type="application/json")
    headers = {"Vary": "Accept-Encoding"}
    if gzip_ok:
        headers["Content-Encoding"] = "gzip"
    return Response(content=answer.gzipped if gzip_ok else answer.body,
                    media_type="application/json", headers=headers)


def _today(svc: Services) -> date:
    return local_date(svc.ledger.clock())


def _cached_answer(svc: Services, projection: str, key: tuple,
                   gzip_ok: bool) -> Response | None:
    """The answer ``_respond`` would send from the cache, if it can be had without blocking:
    the projection's freshness as this process last read it (within ``freshness_seconds``)
    and the answer cached under it. None: take the ordinary path (on a thread)."""
    recent = getattr(svc.read_models, "recent_freshness", None)
    if recent is None:
        return None
    token = recent(projection, svc.settings.freshness_seconds)
    if token is None:
        return None
    answer = svc.answers.peek((projection, token, *key))
    return None if answer is None else _send(answer, gzip_ok)


@router.get("/agencies/{code}/obligations", response_model=QueryResult, responses=READ_ERRORS,
            tags=["queries"])
async def obligations(
    request: Request, svc: ServicesDep, _: Reader,
    code: Annotated[str, Path(pattern=AGENCY_CODE, examples=["QNG-STC"])],
    as_of: AsOf = None,
    effective_on: Annotated[QueryDay, Query(description=(
        "Effective-time axis: judge statuses on this day (default: today)."))] = None,
    min_position: MinPosition = None,
    include_groups: Annotated[bool, Query(description=(
        "Also the tasks of groups the agency belongs to (\"Các sở, ban, ngành\" "
        "coordinate thousands of tasks)."))] = False,
    include_closed: Annotated[bool, Query(description="Also obligations done or "
                                          "cancelled.")] = False,
    limit: Annotated[int, Query(ge=1, le=5000, description="At most this many obligations "
                                "(counts cover them all).")] = OBLIGATIONS_PAGE,
    offset: Annotated[int, Query(ge=0, le=10**6)] = 0,
):
    """What an agency owes: open tasks as lead or coordinator (and, if asked, as a member
    of a group), due dates (effective and original), status, days overdue, extensions.
    Sent gzipped to a client whose Accept-Encoding admits it."""
    gzip_ok = accepts_gzip(request.headers.get("accept-encoding"))
    if min_position is None:
        # A cached answer is sent from the event loop; anything else (validation, the
        # agency's 404, computing) runs on a thread as before. Only an answer computed
        # after those checks passed is ever cached.
        try:
            moment = _as_of(as_of)
        except ProblemError:
            pass  # refused on the thread path, after the checks that come first there
        else:
            key = _obligations_key(svc, code, moment, effective_on, include_groups,
                                   include_closed, limit, offset)
            hit = _cached_answer(svc, "obligations", key, gzip_ok)
            if hit is not None:
                return hit
    return await run_in_threadpool(
        _obligations, svc, code, as_of, effective_on, min_position, include_groups,
        include_closed, limit, offset, gzip_ok)


def cached_default_obligations(svc: Services, code: str, gzip_ok: bool) -> Response | None:
    """What ``obligations`` would send from the cache for a request without query
    parameters, if it can be had without blocking; None otherwise (see
    service/cached_reads.py). The key is the one the endpoint builds from its defaults
    (tests/api/test_cached_reads.py checks that the two are answered from one entry)."""
    key = _obligations_key(svc, code, None, None, False, False, OBLIGATIONS_PAGE, 0)
    return _cached_answer(svc, "obligations", key, gzip_ok)


def _obligations_key(svc: Services, code: str, moment: datetime | None,
                     effective_on: date | None, *rest: Any) -> tuple:
    """The answer cache's key of an obligations query (the day judged on included: a
    default of 'today' changes at midnight)."""
    return ("obligations", code, moment, effective_on or _today(svc), *rest)


def _obligations(svc: Services, code: str, as_of: str | None, effective_on: date | None,
                 min_position: int | None, include_groups: bool, include_closed: bool,
                 limit: int, offset: int, gzip_ok: bool) -> Response:
    models = _read_models(svc, min_position)
    svc.ledger.agency(code)  # 404 for an unknown agency
    moment = _as_of(as_of)

    def compute() -> dict[str, Any]:
        data = models.obligations(code, as_of=moment, effective_on=effective_on,
                                  include_groups=include_groups, include_closed=include_closed,
                                  limit=limit, offset=offset)
        return _answer({"agency": code, "as_of": moment, "effective_on": effective_on,
                        "include_groups": include_groups or None,
                        "include_closed": include_closed or None}, data)

    key = _obligations_key(svc, code, moment, effective_on, include_groups, include_closed,
                           limit, offset)
    return _respond(svc, models, "obligations", key, compute, min_position=min_position,
                    gzip_ok=gzip_ok)


@router.get("/obligation-counts", response_model=QueryResult, responses=READ_ERRORS)
def obligation_counts(
    request: Request, svc: ServicesDep, _: Reader,
    as_of: AsOf = None,
    effective_on: Annotated[QueryDay, Query(description=(
        "Effective-time axis: judge statuses on this day (default: today)."))] = None,
    min_position: MinPosition = None,
):
    """Every agency's obligations on a day by status, with the nearest due date of those in
    progress: the province's overview. An agency merged into another by then answers for
    none that are still open (its successor does); those it finished stay counted to it.
    The same answer is sent for up to LEDGER_API_OVERVIEW_SECONDS (10) after it was
    computed, though events arrive meanwhile, and up to twice that while it is computed
    again: ``data.as_of.position`` says how far it reaches, and ``min_position`` asks for
    one that reaches a write. Sent gzipped to a client whose Accept-Encoding admits it."""
    models = _read_models(svc, min_position)
    moment = _as_of(as_of)

    def compute() -> dict[str, Any]:
        data = models.obligation_counts(as_of=moment, effective_on=effective_on)
        return _answer({"as_of": moment, "effective_on": effective_on}, data)

    key = ("obligation_counts", moment, effective_on or _today(svc))
    return _respond(svc, models, "obligations", key, compute, min_position=min_position,
                    gzip_ok=accepts_gzip(request.headers.get("accept-encoding")),
                    overview=svc.settings.overview_seconds)


@router.get("/accountability", response_model=QueryResult, responses=READ_ERRORS)
def accountability(
    request: Request, svc: ServicesDep, _: Reader,
    period: Annotated[str, Query(pattern=_PERIOD.pattern, examples=["2024", "2024-Q2"],
                                 description="A year, a quarter (2024-Q2) or a half year "
                                             "(2024-H1).")],
    agency: Annotated[str | None, Query(pattern=AGENCY_CODE)] = None,
    as_of: AsOf = None,
    min_position: MinPosition = None,
):
    """Per agency head per period: tasks fallen due, on time, late, overdue, extensions,
    rejected completions, each shortfall with its proving events (advice, not a rating).
    Without ``agency`` (every head of the province) the same answer is sent for up to
    LEDGER_API_OVERVIEW_SECONDS (10) after it was computed, though events arrive
    meanwhile, and up to twice that while it is computed again: ``data.as_of.position``
    says how far it reaches, and ``min_position`` asks for one that reaches a write. Sent
    gzipped to a client whose Accept-Encoding admits it."""
    models = _read_models(svc, min_position)
    if agency is not None:
        svc.ledger.agency(agency)
    moment = _as_of(as_of)

    def compute() -> dict[str, Any]:
        data = models.accountability(period, agency=agency, as_of=moment)
        return _answer({"period": period, "agency": agency, "as_of": moment}, data)

    # Judged on today (or the day of as_of): an open period's overdue tasks change at midnight.
    key = ("accountability", period, agency, moment, _today(svc))
    return _respond(svc, models, "accountability", key, compute, min_position=min_position,
                    gzip_ok=accepts_gzip(request.headers.get("accept-encoding")),
                    overview=svc.settings.overview_seconds if agency is None else 0.0)


@router.get("/history/{entity_type}/{entity_id}", response_model=QueryResult,
            responses=READ_ERRORS)
def history(
    svc: ServicesDep, _: Reader,
    entity_type: Annotated[str, Path(pattern=r"^(directive|task|agency)$")],
    entity_id: Annotated[str, Path(max_length=100, description=(
        "A directive or task id (UUID), or an agency code."))],
    as_of: AsOf = None,
    min_position: MinPosition = None,
):
    """Every event of one directive, task or agency in order: who, when, from which
    document, state before and after."""
    _check_entity_id(entity_type, entity_id)
    models = _read_models(svc, min_position)
    moment = _as_of(as_of)
    data = models.history(entity_type, entity_id, as_of=moment)
    return _answer({"entity_type": entity_type, "entity_id": entity_id, "as_of": moment}, data)
