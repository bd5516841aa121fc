"""A stored event edited behind the ledger's back is refused with UnreadableEvent, whether it
no longer parses, parses into something that is not a moment where its recorded time was, or
parses but no longer fits its aggregate. No I/O: the mapper and the fold, in memory."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from uuid import uuid4

import orjson
import pytest
from eventsourcing.persistence import Notification

from domain.agency import Agency, AgencyLevel
from domain.deadlines import DeadlineContext, parse_deadline
from domain.errors import UnreadableEvent
from domain.persistence.checked_mapper import CheckedMapper
from domain.persistence.fast_json import FastJSONTranscoder
from domain.persistence.transcodings import ledger_transcoder
from domain.task import Task

MAPPER = CheckedMapper(transcoder=ledger_transcoder(FastJSONTranscoder))


def stored(position: int = 7) -> Notification:
    agency = Agency.register(
        code="QNG-SNV", name="Sở Nội vụ", level=AgencyLevel.PROVINCIAL, parent=None,
        aliases=["SNV"], established_on=None, member_levels=[], meta={"actor": "test"},
        timestamp=datetime(2021, 8, 26, 9, tzinfo=UTC))
    (event,) = agency.collect_events()
    s = MAPPER.to_stored_event(event)
    return Notification(id=position, originator_id=s.originator_id,
                        originator_version=s.originator_version, topic=s.topic, state=s.state)


def edited(note: Notification, change) -> Notification:
    data = orjson.loads(note.state)
    change(data)
    return dataclasses.replace(note, state=orjson.dumps(data))


def test_an_untouched_event_reads_and_folds():
    agency = MAPPER.to_domain_event(stored()).mutate(None)
    assert (agency.code, agency.name, agency.version) == ("QNG-SNV", "Sở Nội vụ", 1)


@pytest.mark.parametrize("damage, why", [
    (lambda n: dataclasses.replace(n, state=n.state[:40]), "Unterminated string"),
    (lambda n: edited(n, lambda d: d["timestamp"].update(_data_="2021-08-2xT09:00:00")),
     "Invalid isoformat string"),
    (lambda n: edited(n, lambda d: d.update(timestamp={"_dXta_": "2021-08-26"})),
     "its recorded time is not a moment"),
    (lambda n: edited(n, lambda d: d.pop("timestamp")), "its recorded time is not a moment"),
    (lambda n: edited(n, lambda d: d["timestamp"].update(_data_="2021-08-26T09:00:00")),
     "its recorded time has no time zone"),
], ids=["not-json", "not-a-date", "not-a-moment", "no-time", "no-zone"])
def test_a_row_that_no_longer_reads_is_refused_naming_its_position(damage, why):
    with pytest.raises(UnreadableEvent) as refused:
        MAPPER.to_domain_event(damage(stored(position=42)))
    message = str(refused.value)
    assert "at position 42 (Agency.Registered" in message and why in message
    assert refused.value.code == "unreadable-event"


@pytest.mark.parametrize("change, why", [
    (lambda d: d.pop("code"), "its field 'code' is missing"),
    (lambda d: d.pop("originator_topic"), "its field 'originator_topic' is missing"),
    (lambda d: d.update(established_on={"_typX_": "date_iso", "_data_": "2021-08-26"}),
     "its field 'established_on' holds dict, not date or NoneType"),
    (lambda d: d.update(aliases="SNV"), "its field 'aliases' holds str, not list"),
    (lambda d: d.update(name=None), "its field 'name' holds NoneType, not str"),
], ids=["field-gone", "topic-gone", "tag-edited", "list-as-text", "null-text"])
def test_a_row_that_parses_into_fields_of_other_types_is_refused(change, why):
    """An edited transcoding tag leaves a dict where a date or a deadline was; a rendering
    or a projection would fail far from the row."""
    with pytest.raises(UnreadableEvent) as refused:
        MAPPER.to_domain_event(edited(stored(position=9), change))
    assert "at position 9 (Agency.Registered" in str(refused.value)
    assert why in str(refused.value)


def test_a_row_that_reads_but_no_longer_fits_its_aggregate_is_refused_when_folded():
    event = MAPPER.to_domain_event(edited(stored(), lambda d: d.update(level="provincXal")))
    with pytest.raises(UnreadableEvent, match=r"Agency\.Registered of .* v1 cannot be applied"):
        event.mutate(None)


def test_an_event_folded_twice_is_refused_as_out_of_place():
    """A duplicated or reordered row: the creation applied over an existing aggregate."""
    note = stored()
    agency = MAPPER.to_domain_event(note).mutate(None)
    with pytest.raises(UnreadableEvent, match="cannot be applied"):
        MAPPER.to_domain_event(note).mutate(agency)


def test_a_task_whose_deadline_lost_its_due_date_is_refused_where_it_is_read():
    """A byte flipped in the key ``due_on`` still parses, as a dated deadline without a due
    date: refused when read, not a ValueError later in whatever judges the task."""
    task = Task.assign(
        directive_id=uuid4(), directive_number="87/KH-UBND", ordinal="1", section=None,
        content="Xây dựng kế hoạch", deliverable=None, lead="QNG-SNV", coordinating=[],
        lead_text=None, coordinating_text=None,
        deadline=parse_deadline("chậm nhất ngày 30/8/2022",
                                DeadlineContext(date(2022, 1, 10), None)),
        assigned_on=date(2022, 1, 10), assigning_office="QNG-VPUBND",
        meta={"actor": "test"}, timestamp=datetime(2022, 1, 10, 1, tzinfo=UTC))
    (event,) = task.collect_events()
    s = MAPPER.to_stored_event(event)
    note = Notification(id=9, originator_id=s.originator_id,
                        originator_version=s.originator_version, topic=s.topic, state=s.state)
    assert MAPPER.to_domain_event(note).deadline.due_on is not None  # untouched: reads
    damaged = dataclasses.replace(note, state=note.state.replace(b'"due_on"', b'"due_oo"'))
    with pytest.raises(UnreadableEvent) as refused:
        MAPPER.to_domain_event(damaged)
    assert "at position 9 (Task.Assigned" in str(refused.value)
    assert "absolute deadline has no due date" in str(refused.value)


@pytest.mark.parametrize("topic, why", [
    ("domain.task:Task.Nothing", "names no kind of event this ledger knows"),
    ("nowhere:Thing", "names no kind of event this ledger knows"),
    ("domain.agency:Agency", "names something that is not an event"),
    ("builtins:dict", "names something that is not an event"),
])
def test_a_row_whose_topic_names_no_event_is_refused(topic, why):
    """The library raised its TopicError, or a TypeError for a class that is not an event;
    the runner used to skip such a row as a kind of event it did not know."""
    with pytest.raises(UnreadableEvent) as refused:
        MAPPER.to_domain_event(dataclasses.replace(stored(position=11), topic=topic))
    assert "at position 11 (" in str(refused.value) and why in str(refused.value)


@pytest.mark.parametrize("version", [0, -1, "2"])
def test_a_row_whose_class_version_was_edited_is_refused(version):
    """The library upcasts from the stored class version: from 0 it looked for an
    ``upcast_v0_v1`` (AttributeError), from text it compared text with a number."""
    with pytest.raises(UnreadableEvent) as refused:
        MAPPER.to_domain_event(edited(stored(position=12),
                                      lambda d: d.update(class_version=version)))
    assert "at position 12 (Agency.Registered" in str(refused.value)
    assert "does not upcast" in str(refused.value)


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "1944-12-31", "2101-01-01"])
def test_a_row_holding_a_day_outside_the_ledgers_calendar_is_refused(day):
    """No command writes such a day (``require_plausible_days``); an edited year 9999 made a
    recurring task's schedule run past the last year there is."""
    with pytest.raises(UnreadableEvent) as refused:
        MAPPER.to_domain_event(edited(stored(position=13), lambda d: d.update(
            established_on={"_type_": "date_iso", "_data_": day})))
    assert "at position 13 (Agency.Registered" in str(refused.value)
    assert f"{day} is outside the dates the ledger accepts" in str(refused.value)
    edge = edited(stored(), lambda d: d.update(
        established_on={"_type_": "date_iso", "_data_": "2100-12-31"}))
    assert MAPPER.to_domain_event(edge).established_on == date(2100, 12, 31)
