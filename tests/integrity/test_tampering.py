"""Must show (issue 5): on ledgers of random events, on both stores, every kind of tampering
done directly in SQL is detected, and the reported position is the first tampered one; an
untouched ledger verifies clean. The bundle exported from a tampered store fails offline at
the same position."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from uuid import UUID

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain.application import Ledger, read_journal
from domain.errors import UnreadableEvent
from domain.ids import agency_id
from domain.integrity import make_checkpoint, verify_ledger
from domain.integrity.bundle import export_bundle, verify_bundle
from domain.integrity.history import state_as_of, walk_history
from domain.integrity.verify import Kind
from projections.runner import Runner
from tests.behaviour.helpers import OPERATOR
from tests.conftest import FakeClock
from tests.integrity.helpers import Attacker, LedgerBuilder, operations

EXAMPLES = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)

EXPECTED = {
    "edit": Kind.EDITED,
    "delete": Kind.DELETED,
    "insert": Kind.INSERTED,
    "swap": Kind.REORDERED,
    "checkpoint": Kind.CHECKPOINT_ALTERED,
}


def tamper(attacker: Attacker, how: str, rng: random.Random, checkpoints: list[int]) -> int:
    """Apply one tampering; return the first position it touched."""
    positions = attacker.positions()
    if how == "edit":
        position = rng.choice(positions)
        attacker.edit_byte(position, rng.randrange(1 << 16), rng.randrange(1, 256))
        return position
    if how == "delete":
        position = rng.choice(positions)
        attacker.delete(position)
        return position
    if how == "insert":
        unused = sorted(set(range(1, positions[-1] + 4)) - set(positions))
        position = rng.choice(unused)
        attacker.insert_forged(position, template=rng.choice(positions))
        return position
    if how == "swap":
        a, b = sorted(rng.sample(positions, 2))
        attacker.swap(a, b)
        return a
    number = rng.choice(checkpoints)
    return attacker.alter_checkpoint(number, rng.choice(["head", "signed_at", "signature",
                                                         "position"]), rng)


def checkpoint_position(attacker: Attacker) -> int:
    return max((row[1] for row in attacker.checkpoint_rows()), default=0)


@EXAMPLES
@given(ops=operations, how=st.sampled_from(sorted(EXPECTED)), seed=st.integers(0, 2**32))
def test_tampering_is_found_at_the_first_tampered_position(fresh_url, signing_key, tmp_path,
                                                           ops, how, seed):
    url = fresh_url()
    rng = random.Random(seed)
    trusted = [signing_key.public_key()]
    ledger = Ledger(url, clock=FakeClock())
    attacker = Attacker(url)
    try:
        builder = LedgerBuilder(ledger, ledger.clock, signing_key)
        builder.apply(ops[: len(ops) // 2])
        make_checkpoint(ledger, signing_key)
        builder.apply(ops[len(ops) // 2:])  # some events may stay after the last checkpoint

        clean = verify_ledger(ledger, trusted_keys=trusted)
        assert clean.ok, clean.summary()
        assert clean.events == len(attacker.positions())
        checkpoints = [row[0] for row in attacker.checkpoint_rows()]

        expected = tamper(attacker, how, rng, checkpoints)
        event(f"{how}; {'sealed' if expected <= checkpoint_position(attacker) else 'unsealed'}")
        report = verify_ledger(ledger, trusted_keys=trusted)

        assert not report.ok, f"{how} at {expected} went unnoticed"
        first = report.first
        assert first is not None
        assert (first.position, first.kind) == (expected, EXPECTED[how]), report.summary()

        if how != "checkpoint":  # the same evidence, exported, fails offline the same way
            bundle = tmp_path / f"bundle-{seed}.zip"
            export_bundle(ledger, bundle)
            offline = verify_bundle(bundle, trusted_keys=trusted)
            assert not offline.ok()
            assert offline.report.first is not None
            assert (offline.report.first.position, offline.report.first.kind) == \
                (expected, EXPECTED[how])
    finally:
        attacker.close()
        ledger.close()


@pytest.mark.parametrize("how", sorted(EXPECTED))
def test_each_kind_of_tampering_on_the_sample_plan(ledger, store_url, signing_key, how):
    """The same, deterministically, on the 95 events of the sample plan (one bulk save)."""
    from tests.behaviour.helpers import import_plan

    import_plan(ledger)
    make_checkpoint(ledger, signing_key)
    attacker = Attacker(store_url)
    try:
        expected = tamper(attacker, how, random.Random(5), [1])
        report = verify_ledger(ledger, trusted_keys=[signing_key.public_key()])
        assert report.first is not None
        assert (report.first.position, report.first.kind) == (expected, EXPECTED[how])
    finally:
        attacker.close()


def test_a_chain_entry_whose_version_is_text_is_reported_not_crashed_on(ledger, store_url):
    """SQLite lets a row hold another storage class in any column: an edited event whose
    chain entry's version was set to text is reported where it is."""
    if not store_url.startswith("sqlite"):
        pytest.skip("a PostgreSQL integer column cannot hold text")
    from tests.behaviour.helpers import import_plan

    import_plan(ledger)
    attacker = Attacker(store_url)
    try:
        attacker.edit_byte(7, 3, 0x20)
        attacker.sql(f"UPDATE {attacker.chain} SET originator_version = 'x' "
                     "WHERE position = 7")
        report = verify_ledger(ledger)
        assert report.first is not None
        assert (report.first.position, report.first.kind) == (7, Kind.EDITED)
    finally:
        attacker.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=operations, seed=st.integers(0, 2**32), flips=st.integers(1, 3))
def test_replays_of_an_edited_store_answer_or_name_the_damage(fresh_url, signing_key, ops,
                                                               seed, flips):
    """Whatever bytes of an event were changed, the inspector's replays, the journal, loading
    the entity and folding the projections either answer (the edit still reads as an event:
    verification reports it) or stop with UnreadableEvent naming the event — never another
    exception, a traceback in the CLI."""
    url = fresh_url()
    rng = random.Random(seed)
    ledger = Ledger(url, clock=FakeClock())
    attacker = Attacker(url)
    try:
        LedgerBuilder(ledger, ledger.clock, signing_key).apply(ops)
        position = rng.choice(attacker.positions())
        for _ in range(flips):
            attacker.edit_byte(position, rng.randrange(1 << 16), rng.randrange(1, 256))
        fresh = Ledger(url, clock=FakeClock())  # no cached aggregates from the building
        try:
            outcomes = []
            for read in (lambda: state_as_of(fresh, FAR_FUTURE).as_json(),
                         lambda: [s.as_json() for s in walk_history(fresh, None)],
                         lambda: [e.as_json() for e in read_journal(fresh, after=0,
                                                                    limit=10_000)],
                         lambda: fresh.repository.get(attacker.row(position)[0]),
                         lambda: Runner(fresh).catch_up()):  # every projection folds it
                try:
                    read()
                    outcomes.append("answered")
                except UnreadableEvent as exc:
                    assert exc.code == "unreadable-event" and "ledger verify" in str(exc)
                    outcomes.append("refused")
            event(f"replay {outcomes[0]}, journal {outcomes[2]}, load {outcomes[3]}, "
                  f"projections {outcomes[4]}")
        finally:
            fresh.close()
        report = verify_ledger(ledger)
        assert report.first is not None and report.first.position == position
    finally:
        attacker.close()
        ledger.close()


def _recurring_assignment(state: bytes) -> bool:
    return orjson.loads(state)["deadline"]["_data_"]["kind"] == "recurring"


# Edits that leave the JSON readable and every field of its declared type, found by probing
# every field, recorded time and topic of a small ledger (07/12/2026): each made some reader
# fail with another exception (TopicError, AttributeError from the upcasting, TypeError
# comparing a moment without a time zone, ValueError from a schedule run up to the year
# 10000) instead of naming the row.
EDITS_OF_MEANING = {  # (the kind of event edited, which one of them, the edit)
    "topic names no event": ("Task.ProgressReported", None,
                             {"topic": "domain.task:Task.Nothing"}),
    "topic names no event class": ("Task.ProgressReported", None,
                                   {"topic": "domain.task:Task"}),
    "class version": ("Task.ProgressReported", None, {"state": {"class_version": 0}}),
    "recorded time without its zone": ("Task.ProgressReported", None, {"state": {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2021-08-26T09:00:00"}}}),
    "day outside the calendar": ("Task.Assigned", _recurring_assignment, {"state": {
        "assigned_on": {"_type_": "date_iso", "_data_": "9999-12-31"}}}),
    # an event no projection folds: a rebuild read only its recorded time
    "edited row of the directive-number index": ("DirectiveNumber.Indexed", None, {"state": {
        "issued_on": {"_type_": "date_iso", "_data_": "0001-01-01"}}}),
}


@pytest.mark.parametrize("edit", sorted(EDITS_OF_MEANING))
def test_edits_of_a_rows_meaning_are_refused_by_every_reader(fresh_url, signing_key, edit):
    """What the edited-store property above samples only by chance, once each: every reader
    (replays, journal, loading the entity, the worker, a rebuild from zero, on PostgreSQL
    also in build processes) stops at the row with UnreadableEvent naming its position."""
    from projections.rebuild import rebuild

    kind, which, edits = EDITS_OF_MEANING[edit]
    url = fresh_url()
    ledger = Ledger(url, clock=FakeClock())
    attacker = Attacker(url)
    try:
        LedgerBuilder(ledger, ledger.clock, signing_key).apply(
            [("agency", 1), ("directive", 6), ("progress", 0), ("progress", 2)])
        position = next(p for p in attacker.positions()
                        if attacker.row(p)[2].endswith(f":{kind}")
                        and (which is None or which(bytes(attacker.row(p)[3]))))
        oid, version, _, _ = attacker.row(position)
        if "topic" in edits:
            attacker.sql(f"UPDATE {attacker.events} SET topic = %s WHERE {attacker.pos} = %s",
                         (edits["topic"], position))
        else:
            attacker.rewrite(position, lambda state: orjson.dumps(
                {**orjson.loads(state), **edits["state"]}))
        fresh = Ledger(url, clock=FakeClock())
        readers = [lambda: state_as_of(fresh, FAR_FUTURE),
                   lambda: list(walk_history(fresh, None)),
                   lambda: read_journal(fresh, after=0, limit=10_000),
                   lambda: fresh.repository.get(UUID(str(oid))),
                   lambda: Runner(fresh).catch_up(),
                   lambda: rebuild(fresh, None, grace=0, jobs=1)]
        if url.startswith("postgresql"):  # build processes, as from 100k events there
            readers.append(lambda: rebuild(fresh, None, grace=0, jobs=2))
        try:
            for read in readers:
                with pytest.raises(UnreadableEvent) as refused:
                    read()
                # loading an entity reads its events without their positions
                assert (f"at position {position} " in str(refused.value)
                        or f"{UUID(str(oid))} v{version})" in str(refused.value)), refused.value
        finally:
            fresh.close()
    finally:
        attacker.close()
        ledger.close()


def test_a_worker_missing_an_earlier_version_of_an_entity_names_the_event_it_stops_at(
        fresh_url, signing_key):
    """A worker that has not cached the entity reads its earlier events when the next one
    arrives; with one of them deleted, it stops with UnreadableEvent naming that next event
    (it raised a RuntimeError, a traceback in the CLI)."""
    url = fresh_url()
    ledger = Ledger(url, clock=FakeClock())
    attacker = Attacker(url)
    try:
        builder = LedgerBuilder(ledger, ledger.clock, signing_key)
        builder.apply([("agency", 1), ("directive", 6), ("progress", 0)])
        Runner(ledger).catch_up()
        deleted = attacker.positions()[-1]
        builder.apply([("progress", 6)])  # the same task again (its first: 6 % 6 == 0)
        later = attacker.positions()[-1]
        assert attacker.row(later)[:2] == (attacker.row(deleted)[0],
                                           attacker.row(deleted)[1] + 1)
        attacker.delete(deleted)
        fresh = Ledger(url, clock=FakeClock())  # a worker started afresh: nothing cached
        try:
            with pytest.raises(UnreadableEvent) as refused:
                Runner(fresh).catch_up()
        finally:
            fresh.close()
        assert f"at position {later} (Task.ProgressReported" in str(refused.value)
        assert "before version 3 are not in the log" in str(refused.value)
    finally:
        attacker.close()
        ledger.close()


def test_a_process_that_cached_the_entity_before_its_row_was_edited_still_writes(
        ledger, store_url, clock, signing_key):
    """The decision in docs/integrity.md ("A row that no longer reads"): a command reads only
    the newer events of an entity it holds in its cache, so it still succeeds where a freshly
    started process stops at the edited row; the edit stays a finding of verification."""
    builder = LedgerBuilder(ledger, clock, signing_key)
    builder.apply([("head", 1)])  # appoints a head of T-S0: the ledger now caches T-S0
    attacker = Attacker(store_url)
    try:
        registered = next(p for p in attacker.positions()
                          if UUID(str(attacker.row(p)[0])) == agency_id("T-S0"))
        attacker.rewrite(registered, lambda state: state[:40])  # no longer JSON
        fresh = Ledger(store_url, clock=clock)
        try:
            with pytest.raises(UnreadableEvent, match=r"Registered, .* v1\) cannot be read"):
                fresh.record_head_left(OPERATOR, "T-S0", "Nguyễn Văn 1", date(2021, 9, 1))
        finally:
            fresh.close()
        ledger.record_head_left(OPERATOR, "T-S0", "Nguyễn Văn 1", date(2021, 9, 1))
        report = verify_ledger(ledger)
        assert (report.first.position, report.first.kind) == (registered, Kind.EDITED)
    finally:
        attacker.close()
