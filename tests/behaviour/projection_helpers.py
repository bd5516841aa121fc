"""Helpers for the projection tests: fresh stores, table digests, a small ledger to play with."""

from __future__ import annotations

import tempfile
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from domain.actors import Actor, CommandContext, Role
from domain.agency import AgencyLevel
from domain.reference import AgencyRecord
from domain.specs import DirectiveSpec, TaskSpec
from projections import registry
from projections.base import EntityState, entity_type, occurrence_changed
from projections.db import Db
from projections.rebuild import build_copy, drop_generation
from projections.runner import all_projections
from projections.tables import table_digest
from tests.behaviour.helpers import OPERATOR


@contextmanager
def fresh_store(like_url: str) -> Iterator[str]:
    """A new empty store of the same kind as ``like_url`` (a new SQLite file, or a new
    PostgreSQL schema dropped afterwards)."""
    if like_url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/ledger.db"
        return
    import psycopg

    parts = urlsplit(like_url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    schema = f"p_{uuid.uuid4().hex[:16]}"
    query["schema"] = schema
    admin = urlunsplit(parts._replace(query=""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield urlunsplit(parts._replace(query=urlencode(query)))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def live_generations(ledger) -> dict[str, int]:
    db = Db(ledger)
    with db.read() as cur:
        return {name: g.generation for name, g in registry.live_generations(cur, db).items()}


def digests(ledger, generations: dict[str, int], at: tuple[str, object] | None = None
            ) -> dict[str, str]:
    """Digest of every table of the given generations (all columns, or with ``at`` the rows
    an as-of query sees)."""
    db = Db(ledger)
    out = {}
    with db.read() as cur:
        for projection in all_projections():
            if projection.name not in generations:
                continue
            for spec in projection.tables:
                out[spec.name] = table_digest(cur, db, spec, generations[projection.name], at)
    return out


@contextmanager
def scratch_copies(ledger, until: int | None = None) -> Iterator[dict[str, int]]:
    """Every projection built from zero (up to ``until``) beside the live copies."""
    built = {}
    try:
        for projection in all_projections():
            built[projection.name] = build_copy(ledger, projection.name, until=until,
                                                page_size=7)
        yield built
    finally:
        for name, generation in built.items():
            drop_generation(ledger, name, generation)


# -- a small ledger: five agencies, a group, six tasks of every kind of deadline --------------

AGENCIES = (
    AgencyRecord("T-UBND", "Ủy ban nhân dân tỉnh Thử", AgencyLevel.PROVINCE),
    AgencyRecord("T-VP", "Văn phòng UBND tỉnh Thử", AgencyLevel.PROVINCIAL, parent="T-UBND"),
    AgencyRecord("T-A", "Sở Alpha", AgencyLevel.PROVINCIAL, parent="T-UBND"),
    AgencyRecord("T-B", "Sở Bêta", AgencyLevel.PROVINCIAL, parent="T-UBND"),
    AgencyRecord("T-C", "Ủy ban nhân dân huyện Gamma", AgencyLevel.DISTRICT, parent="T-UBND"),
    AgencyRecord("T-G", "Các sở, ban, ngành tỉnh Thử", AgencyLevel.GROUP,
                 member_levels=(AgencyLevel.PROVINCIAL,)),
)
TASKS = (
    TaskSpec("1", "Ban hành kế hoạch", "T-A", "chậm nhất ngày 30/9/2021", coordinating=("T-B",)),
    TaskSpec("2", "Báo cáo năm", "T-B", "Hằng năm", coordinating=("T-G",)),
    TaskSpec("3", "Theo dõi thường xuyên", "T-A", "Thường xuyên"),
    TaskSpec("4", "Triển khai hướng dẫn", "T-C", "Sau khi có hướng dẫn của Bộ"),
    TaskSpec("5", "Rà soát thủ tục", "T-G", "Quý IV năm 2021"),
    TaskSpec("6", "Báo cáo quý", "T-B", "Định kỳ hằng quý", coordinating=("T-A", "T-C")),
)
SMALL = DirectiveSpec(
    number="12/KH-UBND", issuer="T-UBND", assigning_office="T-VP", issued_on=date(2021, 8, 26),
    title="Kế hoạch thử nghiệm", plan_last_year=2023, tasks=TASKS,
)


def issue_small(ledger):
    return ledger.issue_directive(OPERATOR, SMALL, register_agencies=AGENCIES)


T_OFFICE = CommandContext(Actor("token:t-vp", Role.OFFICE, "T-VP"))


def fold_checking_renders(events: Iterable[Any]) -> Counter[str]:
    """Folds ``events`` (in the order of each entity's versions) into every stateful
    projection, asserting after each event that ``render_change`` gives what ``render`` does.
    Counts, per projection, the events it rendered in part (an event on one occurrence of a
    task whose rows were rendered before), so a test can show that path was taken."""
    projections = [p for p in all_projections() if not p.stateless]
    states: dict[tuple[str, Any], EntityState] = {}
    in_part: Counter[str] = Counter()
    for position, event in enumerate(events, start=1):
        for projection in projections:
            if entity_type(event) not in projection.entity_types:
                continue
            key = (projection.name, event.originator_id)
            state = states.get(key)
            before = state.rendered if state is not None else {}
            state, _ = projection.fold(state, event, position, None)
            after = projection.render_change(state, event, before)
            assert after == projection.render(state), (
                f"{projection.name}: {type(event).__qualname__} on {event.originator_id}")
            if before and occurrence_changed(event) is not None:
                in_part[projection.name] += 1
            state.rendered = after
            states[key] = state
    return in_part
