"""The seam between the HTTP queries and the projections' read models.

The query routes (obligations, their counts, accountability, history) talk to an object of
this shape: ``projections.queries.ReadModels(ledger)``. When that module is not installed the
routes answer 503 ``read-models-unavailable`` instead of failing; tests substitute their own
implementation through ``create_app(read_models=...)``.

Results are turned into JSON by ``jsonable`` (dataclasses, pydantic models, enums, dates,
UUIDs, objects with ``as_json()``), so the read models may return plain Python objects.
"""

from __future__ import annotations

import dataclasses
import gzip
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import date, datetime
from enum import Enum
from typing import Any, Protocol
from uuid import UUID

import orjson
import structlog

log = structlog.get_logger("service")


class ReadModelsPort(Protocol):
    def obligations(self, agency: str, *, as_of: datetime | None = None,
                    effective_on: date | None = None, include_groups: bool = True,
                    include_closed: bool = False, limit: int | None = None,
                    offset: int = 0) -> Any: ...

    def obligation_counts(self, *, as_of: datetime | None = None,
                          effective_on: date | None = None) -> Any: ...

    def accountability(self, period: str, agency: str | None = None,
                       as_of: datetime | None = None) -> Any: ...

    def history(self, entity_type: str, entity_id: str,
                as_of: datetime | None = None) -> Any: ...

    def status(self) -> Any: ...

    def wait_for(self, position: int, timeout: float) -> bool: ...


def default_read_models(ledger: Any) -> ReadModelsPort | None:
    """The projections' read models over this ledger, or None when not installed."""
    try:
        from projections.queries import ReadModels  # type: ignore[import-not-found]
    except ImportError:
        log.warning("read_models_unavailable",
                    detail="projections.queries is not installed; query routes answer 503")
        return None
    return ReadModels(ledger)


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if hasattr(value, "as_json") and callable(value.as_json):
        return jsonable(value.as_json())
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return jsonable(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def projection_lag(status: Any, head: int) -> int | None:
    """How many events the slowest read model is behind ``head``, if status tells."""
    data = jsonable(status)
    positions: list[int] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "position" and isinstance(value, int):
                    positions.append(value)
                else:
                    collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(data)
    if not positions:
        return None
    return max(0, head - min(positions))


# Answers smaller than this are sent as they are (gzip's header and the client's work for a
# few hundred bytes).
GZIP_MIN_BYTES = 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """A serialised answer, and the same compressed with gzip when it is worth it: a default
    page of 500 obligations is ~470 KB of JSON and ~50 KB gzipped (level 6: 5 ms, once per
    cached answer; the client inflates it in ~1 ms). Agency systems reach the API over the
    provincial network, where those 420 KB are most of the answer's time."""

    body: bytes
    gzipped: bytes | None = None

    @classmethod
    def of(cls, body: bytes) -> Answer:
        if len(body) < GZIP_MIN_BYTES:
            return cls(body)
        return cls(body, gzip.compress(body, compresslevel=6, mtime=0))


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header admits gzip (RFC 9110 §12.5.3): named (or x-gzip),
    or else covered by ``*``, with a weight above 0."""
    named = star = None
    for item in (accept_encoding or "").split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            named = weight if named is None else max(named, weight)
        elif coding == "*":
            star = weight
    if named is not None:
        return named > 0
    return star is not None and star > 0


def token_position(token: Any) -> int | None:
    """How far an answer computed under a freshness token ((generation, position)) reaches
    in the journal; None for an answer without one."""
    return token[1] if isinstance(token, tuple) and len(token) == 2 else None


# An overview is computed again no sooner than this many times its last computation took,
# whatever its window: where one takes as long as the window (1M events in a slow hour,
# ~10 s), a fixed window had it computed without pause, on a core the writes need.
OVERVIEW_STRETCH = 3.0


def stretched(window: float, took: float) -> float:
    """The window of an answer whose computation took ``took`` seconds."""
    return max(window, OVERVIEW_STRETCH * took)


class AnswerCache:
    """Serialised answers of the read models, keyed by the query and the freshness of the
    projection it reads ((generation, position) of the live copy): a new event or a rebuild
    changes the key, so a stale answer is never served. Small and per process. Each answer
    is kept as JSON and, when large, gzipped once (``Answer``).

    Under load two more things matter. Identical queries arriving together are computed
    once: the others wait for that answer (single flight), instead of each holding a
    database connection for the same seconds of work. And at most ``concurrency`` answers
    are computed at a time per process: a computation holds a pooled connection while it
    judges thousands of obligations in Python (under the GIL, so more at once is not
    faster), and dozens at once exhausted the pool, which then refused writes too."""

    def __init__(self, size: int = 512, concurrency: int = 4,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self._items: OrderedDict[tuple, Answer] = OrderedDict()
        self._lock = threading.Lock()
        self._in_flight: dict[tuple, Future[Answer]] = {}
        self._slots = threading.BoundedSemaphore(concurrency)
        self._clock = clock
        # query -> (when last computed or found current, its freshness token, answer, the
        # seconds its computation took): the latest answer of a query whatever the
        # projection's position since (``latest``).
        self._latest: OrderedDict[tuple, tuple[float, Any, Answer, float]] = OrderedDict()
        self._refreshing: set[tuple] = set()  # queries being computed again (``revalidate``)

    def latest(self, query: tuple, max_age: float) -> tuple[Any, Answer, bool] | None:
        """The freshness token and answer last computed for ``query`` (the cache key without
        its token), even if the projection has moved since: for an overview whose
        computation takes seconds, which every new event would otherwise start again.

        The third item, ``due``, says the answer is older than ``max_age``: it may still be
        sent, while it is computed again meanwhile (``revalidate``), so that a dashboard
        polling every few seconds never waits for the computation. None when there is no
        answer younger than twice ``max_age`` (a caller that polls seldom waits for a new
        one rather than get one that old). ``max_age`` stretches with the time the answer
        took to compute (``stretched``)."""
        with self._lock:
            seen = self._latest.get(query)
        if seen is None:
            return None
        age = self._clock() - seen[0]
        max_age = stretched(max_age, seen[3])
        if age >= 2 * max_age:
            return None
        return seen[1], seen[2], age >= max_age

    def revalidate(self, query: tuple, refresh: Callable[[], None]) -> bool:
        """Run ``refresh`` (which computes ``query``'s answer and ``remember``s it) on a
        thread of its own, unless one is running for ``query`` already. Whether one was
        started. A failure is logged, not raised: the next caller past twice the window
        computes the answer itself, and meets it."""
        with self._lock:
            if query in self._refreshing:
                return False
            self._refreshing.add(query)

        def run() -> None:
            try:
                refresh()
            except Exception:
                log.exception("overview_refresh_failed", query=repr(query))
            finally:
                with self._lock:
                    self._refreshing.discard(query)

        try:
            threading.Thread(target=run, daemon=True, name="overview-refresh").start()
        except RuntimeError:  # no thread to be had: the answer is sent as it is
            with self._lock:
                self._refreshing.discard(query)
            return False
        return True

    def remember(self, query: tuple, token: Any, answer: Answer, age: float = 0.0,
                 took: float = 0.0) -> None:
        """Record ``answer`` (current under ``token``, ``age`` seconds ago, computed in
        ``took`` seconds) as ``query``'s latest: the age ``latest`` measures runs from the
        last time it was computed or found current (by this process, or by another:
        service/shared_answers.py)."""
        with self._lock:
            self._latest[query] = (self._clock() - age, token, answer, took)
            self._latest.move_to_end(query)
            while len(self._latest) > self.size:
                self._latest.popitem(last=False)

    def _hit(self, key: tuple) -> Answer | None:
        """The cached answer, marked as recently used (the caller holds the lock)."""
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
        return hit

    def peek(self, key: tuple) -> Answer | None:
        """The cached answer, or None; never computes (safe on the event loop)."""
        with self._lock:
            return self._hit(key)

    def get_or_compute(self, key: tuple, compute: Callable[[], dict[str, Any]]) -> Answer:
        with self._lock:
            hit = self._hit(key)
            if hit is not None:
                return hit
            pending = self._in_flight.get(key)
            if pending is None:
                mine: Future[Answer] = Future()
                self._in_flight[key] = mine
        if pending is not None:
            return pending.result()  # the same answer, or the same error
        try:
            with self._slots:
                answer = Answer.of(orjson.dumps(compute()))
        except BaseException as exc:
            mine.set_exception(exc)
            with self._lock:
                del self._in_flight[key]
            raise
        with self._lock:
            self._items[key] = answer
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            del self._in_flight[key]
        mine.set_result(answer)
        return answer


