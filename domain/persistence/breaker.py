"""A circuit breaker in front of the PostgreSQL connection pool: fail fast while the
database is unreachable, recover by itself when it is back.

Without it, every store call made while PostgreSQL is down waits for the pool (its
timeout, POSTGRES_CONNECT_TIMEOUT) and the library retries each call ten times, so one
HTTP request could hang for close to a minute before its 503. With it, the first failure
opens the breaker; while open, each connection request probes the server directly (a bare
connect with a short timeout, at most once per ``probe_interval``; other callers fail at
once) instead of waiting on the pool. A successful probe closes the breaker and has the
pool check its idle connections once, discarding those the outage broke (cheaper than a
check query before every use, ``pre_ping``, which is off by default).

Any OperationalError or InterfaceError opens the breaker (a lock timeout too): the probe,
not the error, decides whether the server is reachable, so a wrong guess costs one probe.
Except a pool timeout: all of the process's connections busy is overload, not an outage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError


class StoreBreaker:
    def __init__(self, datastore: Any, *, probe_interval: float = 0.5,
                 probe_timeout: int = 2) -> None:
        self.datastore = datastore
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.open_since: float | None = None
        self.last_probe = 0.0
        self.trips = 0
        self._lock = threading.Lock()
        self._get_connection = datastore.get_connection

    @property
    def is_open(self) -> bool:
        return self.open_since is not None

    def _probe(self) -> bool:
        import psycopg

        kwargs = {k: v for k, v in self.datastore.pool.kwargs.items() if k != "row_factory"}
        try:
            with psycopg.connect(**kwargs, connect_timeout=self.probe_timeout,
                                 autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def check(self) -> None:
        """Raise OperationalError at once if the breaker is open and the server still
        does not answer."""
        if self.open_since is None:
            return
        if not self._lock.acquire(blocking=False):
            raise OperationalError("the database is unreachable (another request is probing)")
        try:
            if self.open_since is None:
                return
            now = time.monotonic()
            if now - self.last_probe < self.probe_interval:
                raise OperationalError("the database is unreachable (circuit open)")
            self.last_probe = now
            if not self._probe():
                raise OperationalError("the database is unreachable (probe failed)")
            self._discard_broken_connections()
            self.open_since = None
        finally:
            self._lock.release()

    def _discard_broken_connections(self) -> None:
        try:
            self.datastore.pool.check()  # psycopg_pool: test idle connections, replace bad ones
        except Exception:  # the next failure trips the breaker again anyway
            pass

    def trip(self) -> None:
        if self.open_since is None:
            self.open_since = time.monotonic()
            self.trips += 1
            self.last_probe = 0.0

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        self.check()
        try:
            with self._get_connection() as conn:
                yield conn
        except (OperationalError, InterfaceError) as exc:
            if not _pool_exhausted(exc):
                self.trip()
            raise


def _pool_exhausted(exc: BaseException) -> bool:
    """Every pooled connection was busy for the whole wait: the server is there, the
    process is overloaded. Tripping the breaker would turn a queue into an outage (every
    request, writes included, answered 503 until the next probe)."""
    from psycopg_pool import PoolTimeout

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, PoolTimeout):
            return True
        cause = cause.__cause__
    return False


def install_breaker(datastore: Any, **options: Any) -> StoreBreaker | None:
    """Put a breaker in front of a PostgreSQL datastore's pool (SQLite needs none)."""
    if not hasattr(datastore, "pool") or not hasattr(datastore.pool, "kwargs"):
        return None
    existing = getattr(datastore, "breaker", None)
    if isinstance(existing, StoreBreaker):
        return existing
    breaker = StoreBreaker(datastore, **options)
    datastore.get_connection = breaker.get_connection
    datastore.breaker = breaker
    return breaker
