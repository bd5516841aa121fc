"""Rebuild a projection from zero beside the live copy, then switch readers over atomically.

1. Claim: create generation g+1's tables and register it as ``building`` (refused while
   another rebuild of the same projection is alive; a dead one's leftovers are dropped).
2. Build: fold the log up to the head into g+1 entity by entity (``entity_order``), in
   pages outside any long transaction, while the live copy g keeps being updated by the
   workers and read by everyone; then fold what arrived meanwhile in position order. g+1's
   secondary indexes are created once it has caught up (bulk-loading without them is faster).
3. Switch, in one transaction: lock the registry and g's row (the live worker's next page
   waits), fold whatever arrived since step 2 into g+1, then mark g ``retired`` and g+1
   ``live``. Readers resolve the live generation per query, so they see all of g or all of
   g+1, never a half-built table; g+1 is never behind g when it takes over.
4. After a grace period for queries still reading g, drop g's tables.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from projections import registry
from projections.base import Projection
from projections.db import Db
from projections.entity_order import build_in_entity_order
from projections.runner import (
    Progress,
    Runner,
    create_indexes,
    create_tables,
    drop_tables,
    ensure_projections,
    projections_named,
)
from projections.tables import TableSpec

STALE_AFTER = 120.0  # seconds without a sign of life after which a "building" copy is abandoned
KEEP_ALIVE_EVERY = STALE_AFTER / 8  # seconds between a rebuild's signs of life


class RebuildInProgress(Exception):
    """Another process is rebuilding the same projection."""


def _age_seconds(stamp: str) -> float:
    return (datetime.now(tz=UTC) - datetime.fromisoformat(stamp)).total_seconds()


def claim_generations(db: Db, projections: Sequence[Projection], state: str) -> dict[str, int]:
    claimed: dict[str, int] = {}
    with db.write() as cur:
        registry.lock_registry(cur, db)
        for projection in projections:
            for gen in registry.all_generations(cur, db, projection.name):
                if gen.state == "retired":  # left over by a rebuild that died in its grace
                    drop_tables(cur, db, projection, gen.generation)
                    registry.delete_generation(cur, db, projection.name, gen.generation)
                if gen.state == "building" and state == "building":
                    if _age_seconds(gen.updated_at) < STALE_AFTER:
                        raise RebuildInProgress(
                            f"{projection.name} is already being rebuilt by {gen.owner} "
                            f"(generation {gen.generation}, at position {gen.position})")
                    drop_tables(cur, db, projection, gen.generation)
                    registry.delete_generation(cur, db, projection.name, gen.generation)
            generation = registry.next_generation(cur, db, projection.name)
            # Indexes once built; on PostgreSQL the primary keys too (``add_primary_keys``).
            create_tables(cur, db, projection, generation, indexes=False,
                          primary_key=db.dialect != "postgres")
            registry.insert_generation(cur, db, projection.name, generation, state,
                                       projection.fingerprint())
            claimed[projection.name] = generation
    return claimed


def drop_generation(ledger: Any, name: str, generation: int) -> None:
    db = Db(ledger)
    (projection,) = projections_named([name])
    with db.write() as cur:
        registry.lock_registry(cur, db)
        drop_tables(cur, db, projection, generation)
        registry.delete_generation(cur, db, name, generation)


def build_copy(ledger: Any, name: str, *, until: int | None = None, page_size: int = 2000
               ) -> int:
    """A ``scratch`` generation of one projection built from zero up to ``until`` (or the
    head), never switched live: for comparing a rebuild with the live copy."""
    db = Db(ledger)
    ensure_projections(db)
    projections = projections_named([name])
    generation = claim_generations(db, projections, "scratch")[name]
    runner = Runner(ledger, projections, page_size=page_size, until=until)
    runner.attach(projections[0], generation, ("scratch",))
    build_in_entity_order(db, list(runner.attached.values()), page_size=page_size,
                          until=until)
    add_primary_keys(db, projections, {name: generation})
    create_indexes(db, projections, {name: generation})
    return generation


def rebuild(ledger: Any, names: Sequence[str] | None = None, *, page_size: int = 2000,
            cache_size: int = 50_000, progress: Progress | None = None,
            grace: float = 2.0, jobs: int | None = None,
            phase: Callable[[str], None] | None = None) -> dict[str, dict[str, int]]:
    """Rebuild the named projections (default: all) and switch them live. Returns, per
    projection, the old and new generation and the position the new one went live at.

    ``progress`` follows the folding; ``phase`` is told what comes after it, which takes
    seconds on a big ledger (about a fifth of a rebuild of 1M events): ``"indexes"`` (the
    keys, what arrived meanwhile, the indexes and statistics), ``"switch"``, then
    ``"grace"`` while the old copies serve the readers still on them."""
    tell = phase or (lambda _: None)
    db = Db(ledger)
    ensure_projections(db)
    projections = projections_named(names)
    claimed = claim_generations(db, projections, "building")
    runner = Runner(ledger, projections, page_size=page_size, cache_size=cache_size)
    try:
        with kept_alive(db, claimed):
            for projection in projections:
                runner.attach(projection, claimed[projection.name], ("building",))
            build_in_entity_order(db, list(runner.attached.values()), page_size=page_size,
                                  progress=progress, jobs=jobs or default_jobs(db))
            tell("indexes")
            add_primary_keys(db, projections, claimed)  # before catching up (row lookups)
            runner.catch_up()  # what arrived during the build, in position order
            prepare_for_readers(db, projections, claimed)  # before readers can see the copy
            tell("switch")
            result = _switch(db, runner, projections, claimed)
    except BaseException:
        with db.write() as cur:
            registry.lock_registry(cur, db)
            for projection in projections:
                gen = registry.get_generation(cur, db, projection.name, claimed[projection.name])
                if gen is not None and gen.state == "building":
                    drop_tables(cur, db, projection, gen.generation)
                    registry.delete_generation(cur, db, projection.name, gen.generation)
        raise
    if progress is not None:
        progress(runner.min_position(), runner.min_position())
    if grace > 0:
        tell("grace")
        time.sleep(grace)
    with db.write() as cur:
        registry.lock_registry(cur, db)
        for projection in projections:
            old = result[projection.name]["old_generation"]
            if old:
                drop_tables(cur, db, projection, old)
                registry.delete_generation(cur, db, projection.name, old)
    return result


@contextmanager
def kept_alive(db: Db, claimed: dict[str, int]) -> Iterator[None]:
    """Stamp the claimed ``building`` copies as alive every ``KEEP_ALIVE_EVERY`` seconds
    (from a thread) while the block runs.

    The only sign of life a rebuild gives: the folding's pages (in this process or in its
    children) are not the only long step, since the first pass before them and the
    statements after them (keys, catch-up, CLUSTER, indexes, statistics: ~9 s on a
    1M-event ledger, some of them single statements that grow with the ledger) take as long
    as they take; past ``STALE_AFTER`` a second ``ledger rebuild`` would take the copy for a
    dead one and drop it under this one's feet. A stamp that fails (the database
    busy or gone for a moment) is tried again at the next beat: the build itself reports
    its own errors."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(KEEP_ALIVE_EVERY):
            try:
                with db.write() as cur:
                    for name, generation in sorted(claimed.items(),
                                                   key=lambda row: registry.row_order(*row)):
                        registry.touch(cur, db, name, generation, "building")
            except Exception:  # the next beat tries again
                continue

    keeper = threading.Thread(target=beat, name="rebuild-keep-alive", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()


PARALLEL_FROM = 100_000  # events: below this, starting processes costs more than it saves


def default_jobs(db: Db) -> int:
    """Processes for an entity-ordered build: two on PostgreSQL for a big ledger when the
    machine has two cores or more (SQLite has one writer at a time: one)."""
    if db.dialect != "postgres" or (os.cpu_count() or 1) < 2:
        return 1
    return 2 if db.head_position() >= PARALLEL_FROM else 1


MAINTENANCE_CONNECTIONS = 2


def add_primary_keys(db: Db, projections: Sequence[Projection],
                     generations: dict[str, int]) -> None:
    """PostgreSQL: the primary keys of a copy bulk-loaded without them
    (``claim_generations``), built from the filled tables in two connections at once, biggest
    first. Entity-ordered folding closes every row version in memory and only appends, so it
    never looks a key up, and maintaining the keys row by row through its COPYs cost more
    than building them once (1M events: PostgreSQL's CPU 0.83×, the rebuild 0.91×); the
    catch-up after it closes rows by their key."""
    if db.dialect != "postgres":
        return
    _in_parallel(db, [(spec, generations[p.name]) for p in projections for spec in p.tables],
                 lambda cur, spec, generation: cur.execute(spec.primary_key_ddl(db, generation)))


def _in_parallel(db: Db, tables: list[tuple[TableSpec, int]],
                 statements: Callable[[Any, TableSpec, int], None]) -> None:
    """Run ``statements`` for each table of a copy no reader sees yet, in
    ``MAINTENANCE_CONNECTIONS`` connections at once (each in autocommit), biggest table
    first: the work is PostgreSQL's, and it has a core for each."""
    with db.maintenance() as cur:
        cur.execute("SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
                    (db.schema,))
        sizes = dict(cur.fetchall())
    tables = sorted(tables, key=lambda item: -sizes.get(item[0].physical(item[1]), 0))

    def run(spec: TableSpec, generation: int) -> None:
        with db.maintenance() as cur:
            statements(cur, spec, generation)

    with ThreadPoolExecutor(MAINTENANCE_CONNECTIONS) as pool:
        for done in [pool.submit(run, spec, generation) for spec, generation in tables]:
            done.result()


def prepare_for_readers(db: Db, projections: Sequence[Projection],
                        generations: dict[str, int]) -> None:
    """Make a filled copy ready to serve: its secondary indexes (``create_indexes``), then
    planner statistics (``analyze_tables``).

    On PostgreSQL, per table and in this order: CLUSTER (``TableSpec.clustered``; first,
    since it rebuilds every index the table has), the secondary indexes, then VACUUM ANALYZE
    for a table with a covering index (an index-only scan skips the table only for pages
    VACUUM has marked all-visible) or ANALYZE. Tables are prepared in two connections at
    once, biggest first: the statements are PostgreSQL's work, and it has a core for each."""
    if db.dialect != "postgres":
        create_indexes(db, projections, generations)
        for projection in projections:
            analyze_tables(db, projection, generations[projection.name])
        return

    def prepare(cur: Any, spec: TableSpec, generation: int) -> None:
        table = spec.physical(generation)
        if spec.clustered:
            cur.execute(f"CLUSTER {db.name(table)} USING {table}_pkey")
        for statement in spec.index_ddl(db, generation):
            cur.execute(statement)
        cur.execute(f"{'VACUUM (ANALYZE)' if spec.covering else 'ANALYZE'} {db.name(table)}")

    _in_parallel(db, [(spec, generations[p.name]) for p in projections for spec in p.tables],
                 prepare)


def analyze_tables(db: Db, projection: Projection, generation: int) -> None:
    """Gather planner statistics on a freshly loaded generation before readers see it.

    Without them PostgreSQL plans the first queries on guesses (a few hundred rows per table)
    and scans whole tables instead of using their keys: on a 1M-event ledger an agency's
    obligations took 3–5 s instead of 0.5–0.8 s until autovacuum came round."""
    with db.write() as cur:
        for spec in projection.tables:
            cur.execute(f"ANALYZE {db.name(spec.physical(generation))}")


def _switch(db: Db, runner: Runner, projections: Sequence[Projection],
            claimed: dict[str, int]) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {}
    with db.write() as cur:
        registry.lock_registry(cur, db)
        live = registry.live_generations(cur, db)
        if db.dialect == "postgres":
            # Holds the live rows: a worker's next compare-and-set waits for this commit
            # (and then fails, re-reads the registry and follows the new generation). And
            # the copies it switches, which its keep-alive stamps. In registry.ROW_ORDER,
            # as every transaction that changes several rows takes them: a worker that
            # had advanced one live row and waited for the next, taken here first in
            # another order, was a deadlock (07/12/2026, in the suite).
            marks = ", ".join(["%s"] * len(claimed))
            cur.execute(f"SELECT name FROM {db.name(registry.TABLE)} WHERE state='live' OR "
                        f"(state='building' AND name IN ({marks})) "
                        f"ORDER BY {registry.ROW_ORDER} FOR UPDATE", tuple(claimed))
        runner.fold_remaining(cur)
        for projection in projections:
            new = claimed[projection.name]
            old = live.get(projection.name)
            attached = runner.attached[projection.name]
            if old is not None:
                registry.set_state(cur, db, projection.name, old.generation, "retired")
            registry.set_state(cur, db, projection.name, new, "live")
            result[projection.name] = {
                "old_generation": old.generation if old else 0,
                "old_position": old.position if old else 0,
                "generation": new, "position": attached.position,
            }
    return result
