"""Shared fixtures: a controllable ledger clock, and a store URL for each backend.

Behaviour tests take ``store_url`` (or ``ledger``) and run once on SQLite and once on
PostgreSQL. PostgreSQL comes from LEDGER_TEST_POSTGRES_URL (default: the local server,
user postgres, database ledger_test, created if missing); each test gets its own schema,
dropped afterwards. Without a server the PostgreSQL half is skipped locally, but under
CI=true a missing server is a failure, never a skip.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest

from domain.clock import LOCAL_TZ

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/ledger_test"
PG_URL = os.environ.get("LEDGER_TEST_POSTGRES_URL", DEFAULT_PG)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class FakeClock:
    """The ledger clock under test control. Starts at the given local time; only moves
    forward (the ledger's recorded times are non-decreasing in production too)."""

    def __init__(self, local: str = "2021-08-26 09:00") -> None:
        self.now = datetime.fromisoformat(local).replace(tzinfo=LOCAL_TZ).astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def set(self, local: str) -> None:
        moment = datetime.fromisoformat(local).replace(tzinfo=LOCAL_TZ).astimezone(UTC)
        assert moment >= self.now, "the test clock only moves forward"
        self.now = moment

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def wait_until(condition, timeout: float = 60.0) -> bool:
    """Wait (not a timed assertion: the caller checks the outcome) for a condition."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class MonotonicClock:
    """A ``time.monotonic`` under test control: seconds, moved by setting ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


_pg_state: dict[str, object] = {}


def _admin_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres", query=""))


def postgres_available() -> str | None:
    """None when usable, else the reason it is not."""
    if "reason" in _pg_state:
        return _pg_state["reason"]  # type: ignore[return-value]
    import psycopg

    reason = None
    try:
        dbname = urlsplit(PG_URL).path.lstrip("/")
        with psycopg.connect(_admin_url(PG_URL), autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname=%s", (dbname,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{dbname}"')
    except Exception as exc:
        reason = f"PostgreSQL at {PG_URL} is not available: {exc}"
    _pg_state["reason"] = reason
    return reason


def require_postgres() -> None:
    reason = postgres_available()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)


@pytest.fixture
def pg_schema_url():
    """A fresh PostgreSQL schema for one test; the URL selects it."""
    import psycopg

    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    base = urlsplit(PG_URL)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if base.query else ""
    url = urlunsplit(base._replace(query=f"{base.query}{sep}schema={schema}"))
    try:
        yield url
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
    else:
        yield request.getfixturevalue("pg_schema_url")


@pytest.fixture
def ledger(store_url, clock):
    from domain.application import Ledger

    app = Ledger(store_url, clock=clock)
    try:
        yield app
    finally:
        app.close()
