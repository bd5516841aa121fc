"""Shared plumbing of the benchmarks: a fresh PostgreSQL schema per run, timers, rows."""

from __future__ import annotations

import gc
import os
import resource
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from eventsourcing.persistence import Mapper

from domain.persistence.transcodings import ledger_transcoder

PG_URL = os.environ.get("LEDGER_BENCH_POSTGRES_URL",
                        "postgresql://postgres@127.0.0.1:5432/ledger_bench")


@dataclass
class Row:
    """One line of the result table. ``ratio`` is ours / baseline, measured in the same run."""

    benchmark: str
    ours: str
    baseline: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""


def ensure_database() -> None:
    parts = urlsplit(PG_URL)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres", query=""))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def schema_url(schema: str) -> str:
    """The ledger URL of ``schema`` in the benchmarks' database."""
    base = urlsplit(PG_URL)
    query = f"{base.query}&schema={schema}" if base.query else f"schema={schema}"
    return urlunsplit(base._replace(query=query))


@contextmanager
def fresh_schema(prefix: str = "b") -> Iterator[str]:
    """A new schema; yields the ledger URL that selects it; dropped afterwards."""
    ensure_database()
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(schema)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class Stopwatch:
    """Accumulates the time spent inside ``with watch:`` blocks only.

    With ``freeze_untimed``, what the process holds when a block starts (in the import
    benchmark: the synthetic ledger's generator, every aggregate of the simulation) is
    frozen for the block (``gc.freeze``), so Python's cyclic collector does not walk it
    while the timed code runs. A real importer reading a file holds no such heap; without
    this, full collections over the generator's objects were part of every save's time."""

    def __init__(self, *, freeze_untimed: bool = False) -> None:
        self.seconds = 0.0
        self.freeze_untimed = freeze_untimed

    def __enter__(self) -> Stopwatch:
        if self.freeze_untimed:
            gc.freeze()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._start
        if self.freeze_untimed:
            gc.unfreeze()  # the generator's objects are collected as usual between blocks


def cpu_seconds(port: str) -> dict[str, float]:
    """CPU seconds (user + system) so far, Linux only: ``server``, every process in the
    session of the server listening on ``port`` (`ledger serve` is started in a session of
    its own: its workers are in it), and ``postgres``, every process whose command line
    starts with ``postgres``."""
    stats: dict[int, list[str]] = {}
    server_session, postgres = None, []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        stats[int(entry.name)] = fields
        if b"serve" in command and b"--port" in command \
                and command[command.index(b"--port") + 1] == port.encode():
            server_session = int(fields[3])
        if command[0].startswith(b"postgres"):
            postgres.append(fields)
    ticks = os.sysconf("SC_CLK_TCK")

    def used(fields: list[str]) -> float:
        return (int(fields[11]) + int(fields[12])) / ticks

    return {"server": sum(used(f) for f in stats.values()
                          if server_session is not None and int(f[3]) == server_session),
            "postgres": sum(used(f) for f in postgres)}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "n/a"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def library_mapper() -> Mapper:
    """The library's own mapper and JSON transcoder (our transcodings registered, as a plain
    ``Application`` of ours would have them): what the raw baselines decode with. The
    ledger reads the same bytes with orjson (``FastJSONTranscoder``), which is ours, not the
    library's, so it stays out of the baselines."""
    return Mapper(transcoder=ledger_transcoder())
