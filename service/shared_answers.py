"""Overview answers shared by every server process of one ledger.

An overview (every agency's obligation counts, every head's accountability) takes seconds
to compute on a large ledger and is sent again for ``LEDGER_API_OVERVIEW_SECONDS`` after it
was computed (routers/queries.py). Each process keeps its own answers (``AnswerCache``), so
with N processes behind one port the same overview was computed N times per window: at 1M
events and two processes, a dashboard polling the counts took 30% of the writes' rate.

Here the answer is kept once, in a table of the ledger's database, with the moment its
computation started, how long it took (an overview's window stretches with that:
read_models.stretched) and the projection's freshness token it was computed under. A
process without a young enough answer of its own reads the table first; if the answer
there is young enough, it adopts it. Otherwise it *claims* the query (one conditional
upsert: the claim holds for ``lease`` seconds, or twice as long as the last computation
took if that is longer), computes it and publishes it; another process that finds the
claim held waits for that answer instead of computing the same one. A process that dies
while it holds a claim delays the others by at most its lease; one whose computation runs
more than twice as long as the last one has it started again by the next process to ask
(wasted work, not a wrong answer).

Moments here are wall-clock seconds (``time.time``): the processes may run on several
machines, whose clocks NTP keeps within far less than an overview's window.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from domain.persistence.schema_lock import schema_lock
from service.read_models import Answer, token_position
from service.storage import ServiceTables

# A claim holds at least this many times as long as the query's last computation took: with
# a fixed lease, an overview slower than it (at 1M events they took up to 14 s against the
# 30 s lease; a bigger ledger or a slower hour takes longer) would be started by a second
# process while the first still computed it, on the cores the writes need.
LEASE_PER_LAST_COMPUTATION = 2.0

# Rows of queries not asked for this long are deleted when an answer is published (a key
# holds the day judged on, so yesterday's overviews are never asked for again).
FORGET_AFTER_SECONDS = 2 * 86400.0


@dataclass(frozen=True, slots=True)
class SharedAnswer:
    computed_at: float  # wall-clock seconds
    token: Any  # the projection's freshness token it was computed under
    answer: Answer
    took: float = 0.0  # seconds its computation took (its window stretches with it)

    @property
    def position(self) -> int | None:
        """How far the answer reaches in the journal (the token's position)."""
        return token_position(self.token)


class SharedAnswers:
    """The table of shared overview answers (see the module's docstring)."""

    def __init__(self, tables: ServiceTables, *, lease: float = 30.0,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.tables = tables
        self.table = f"{tables.prefix}ledger_shared_answers"
        self.lease = lease
        self._clock = clock
        self._sleep = sleep

    def create(self) -> None:
        blob = "BYTEA" if self.tables.dialect == "postgres" else "BLOB"
        # (the lock: processes starting together would race on the catalogue)
        with schema_lock(self.tables.ledger.store), self.tables.transaction(commit=True) as tx:
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                "query_id TEXT PRIMARY KEY, "
                "query TEXT NOT NULL, "
                "computed_at DOUBLE PRECISION, "
                "took DOUBLE PRECISION, "
                "token TEXT, "
                f"body {blob}, "
                f"gzipped {blob}, "
                "claimed_until DOUBLE PRECISION)"
            )

    @staticmethod
    def query_id(query: tuple) -> str:
        """A stable name for a query (its ``repr``: strings, dates, moments, None)."""
        return hashlib.sha256(repr(query).encode()).hexdigest()

    def fetch(self, query: tuple) -> SharedAnswer | None:
        row = self.tables.query_one(
            f"SELECT computed_at, token, body, gzipped, took FROM {self.table} "
            "WHERE query_id = %s AND body IS NOT NULL", (self.query_id(query),))
        if row is None:
            return None
        computed_at, token, body, gzipped, took = row
        return SharedAnswer(computed_at, _token_from_json(token),
                            Answer(bytes(body), None if gzipped is None else bytes(gzipped)),
                            took or 0.0)

    def claim(self, query: tuple, last_took: float = 0.0) -> bool:
        """Whether this process may compute ``query`` now: no other holds an unexpired claim
        on it. The claim holds until ``publish`` or ``release``, or for ``lease`` seconds,
        or ``LEASE_PER_LAST_COMPUTATION`` times ``last_took`` (how long the query's last
        computation took) if that is longer."""
        now = self._clock()
        lease = max(self.lease, LEASE_PER_LAST_COMPUTATION * last_took)
        with self.tables.transaction(commit=True) as tx:
            tx.execute(
                f"INSERT INTO {self.table} AS t (query_id, query, claimed_until) "
                "VALUES (%s, %s, %s) ON CONFLICT (query_id) DO UPDATE "
                "SET claimed_until = excluded.claimed_until "
                "WHERE t.claimed_until IS NULL OR t.claimed_until <= %s "
                "RETURNING query_id",
                (self.query_id(query), repr(query), now + lease, now))
            return tx.fetchone() is not None

    def publish(self, query: tuple, token: Any, answer: Answer,
                computed_at: float | None = None, took: float = 0.0) -> None:
        """Store ``answer`` (current under ``token``, computed in ``took`` seconds) as
        ``query``'s and end any claim on it. ``computed_at``: when its computation started
        (default: now), so that its age is never understated."""
        now = self._clock()
        when = now if computed_at is None else computed_at
        with self.tables.transaction(commit=True) as tx:
            tx.execute(
                f"INSERT INTO {self.table} AS t "
                "(query_id, query, computed_at, took, token, body, gzipped, claimed_until) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, NULL) ON CONFLICT (query_id) DO UPDATE "
                "SET computed_at = excluded.computed_at, took = excluded.took, "
                "token = excluded.token, "
                "body = excluded.body, gzipped = excluded.gzipped, claimed_until = NULL "
                # (an older answer, from a slower computation, never replaces a newer one)
                "WHERE t.computed_at IS NULL OR t.computed_at <= excluded.computed_at",
                (self.query_id(query), repr(query), when, took, orjson.dumps(token).decode(),
                 answer.body, answer.gzipped))
            tx.execute(f"DELETE FROM {self.table} WHERE computed_at < %s",
                       (now - FORGET_AFTER_SECONDS,))

    def release(self, query: tuple) -> None:
        """End this process's claim without an answer (its computation failed)."""
        with self.tables.transaction(commit=True) as tx:
            tx.execute(f"UPDATE {self.table} SET claimed_until = NULL WHERE query_id = %s",
                       (self.query_id(query),))

    def claimed(self, query: tuple) -> bool:
        """Whether another process holds an unexpired claim on ``query``."""
        row = self.tables.query_one(
            f"SELECT claimed_until FROM {self.table} WHERE query_id = %s",
            (self.query_id(query),))
        return row is not None and row[0] is not None and row[0] > self._clock()

    def now(self) -> float:
        return self._clock()

    def age(self, shared: SharedAnswer) -> float:
        return max(0.0, self._clock() - shared.computed_at)

    def await_newer(self, query: tuple, than: float | None,
                    poll: float = 0.1) -> SharedAnswer | None:
        """The answer another process is computing (one computed after ``than``), waiting
        while its claim holds; None if the claim ends (or lapses) without one."""
        while True:
            found = self.fetch(query)
            if found is not None and (than is None or found.computed_at > than):
                return found
            if not self.claimed(query):
                found = self.fetch(query)  # published between the two reads
                if found is not None and (than is None or found.computed_at > than):
                    return found
                return None
            self._sleep(poll)


def _token_from_json(text: str | None) -> Any:
    """The freshness token as ``freshness`` gives it: a (generation, position) tuple."""
    if text is None:
        return None
    value = orjson.loads(text)
    return tuple(value) if isinstance(value, list) else value
