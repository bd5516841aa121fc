"""FastJSONTranscoder writes the library's bytes and reads them back as the library does."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from eventsourcing.persistence import JSONTranscoder, TranscodingNotRegisteredError
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.generator import SyntheticLedger
from domain.clock import EARLIEST_DAY, LATEST_DAY
from domain.deadlines import Deadline, DeadlineKind, Frequency
from domain.persistence.fast_json import FastJSONTranscoder
from domain.persistence.transcodings import ledger_transcoder

LIBRARY = ledger_transcoder(JSONTranscoder)
FAST = ledger_transcoder(FastJSONTranscoder)

ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=7)),
                         timezone(timedelta(hours=-3, minutes=-30, seconds=-15)),
                         ZoneInfo("Asia/Ho_Chi_Minh")])
# The days the ledger reads back: others are refused when read (``DateAsISO``), though both
# transcoders write any day alike (the writing test takes every day from the year 1 on).
CALENDAR_DAYS = st.dates(EARLIEST_DAY, LATEST_DAY)
DEADLINES = st.builds(
    Deadline, kind=st.sampled_from(DeadlineKind), text=st.text(max_size=30),
    due_on=st.none() | CALENDAR_DAYS, frequency=st.none() | st.sampled_from(Frequency),
    month=st.none() | st.integers(1, 12), day=st.none() | st.integers(1, 31),
    first_year=st.none() | st.integers(1945, 2100), last_year=st.none(),
    condition=st.none() | st.text(max_size=10), note=st.none() | st.text(max_size=10),
).filter(lambda d: d.inconsistency() is None)  # others are refused when read (transcodings)


def values(days: st.SearchStrategy[date]) -> st.SearchStrategy[Any]:
    leaves = (
        st.none() | st.booleans() | st.text() | st.sampled_from(["Sở Tài chính", "Ủy ban",
                                                                 "\x00\x1f\x7f\u2028\"\\"])
        | st.integers(-(2**70), 2**70) | st.floats() | days
        | st.datetimes(timezones=ZONES) | st.uuids() | st.decimals(allow_nan=False)
        | DEADLINES | st.sampled_from(DeadlineKind) | st.times()  # time: registered by neither
    )
    return st.recursive(
        leaves,
        lambda inner: (st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=4)
                       | st.dictionaries(st.integers(0, 5), inner, max_size=2)),
        max_leaves=20,
    )


VALUES = values(st.dates())
READABLE_VALUES = values(CALENDAR_DAYS)


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as exc:  # the same exception type, from the same (library) code
        return "error", type(exc)


def typed_tree(value: Any) -> Any:
    """``value`` with every scalar's type beside it: 1, 1.0 and True compare equal."""
    if isinstance(value, dict):
        return ("dict", {k: typed_tree(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed_tree(v) for v in value])
    return (type(value).__name__, repr(value))


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_writes_the_same_bytes_or_fails_the_same_way(value):
    assert _outcome(lambda: FAST.encode(value)) == _outcome(lambda: LIBRARY.encode(value))


@settings(max_examples=400, deadline=None)
@given(READABLE_VALUES)
def test_reads_what_the_library_wrote_as_the_library_does(value):
    try:
        data = LIBRARY.encode(value)
    except Exception:
        return  # nothing written: covered by the test above
    assert typed_tree(FAST.decode(data)) == typed_tree(LIBRARY.decode(data))


@pytest.mark.parametrize("text", [
    b'{"a":123456789012345678901234567890}',  # orjson would read a float
    b'{"a":[1.5,1e400,-0.0]}', b'{"a":NaN}', b'[18446744073709551615,-9223372036854775808]',
    b'{"_type_":"uuid_hex","_data_":"8c1a6c5ebc2e4f4e9d6b0d6d1f3e7a21"}',
    b'{"_type_":"uuid_hex"}', b'{"_type_":"x","_data_":1,"y":2}',
    b'{"a":{"_type_":"deadline","_data_":{"kind":"absolute","text":"t",'
    b'"due_on":"2026-12-01"}}}',
    b'"\\ud800"', b'{"a":"\\u0000"}',
])
def test_reads_edge_cases_as_the_library_does(text):
    fast, library = _outcome(lambda: FAST.decode(text)), _outcome(lambda: LIBRARY.decode(text))
    assert fast[0] == library[0]
    assert (typed_tree(fast[1]) if fast[0] == "ok" else fast[1]) == (
        typed_tree(library[1]) if library[0] == "ok" else library[1])


def test_refuses_what_the_library_refuses():
    with pytest.raises(TranscodingNotRegisteredError):
        FAST.decode(b'{"_type_":"nope","_data_":1}')
    with pytest.raises(TranscodingNotRegisteredError):
        FAST.encode({"at": time(8, 0)})
    with pytest.raises(UnicodeDecodeError):
        FAST.decode(b'"\xff"')


def test_every_event_of_a_synthetic_ledger_is_written_and_read_as_the_library_does():
    states = []
    for batch in SyntheticLedger(3).batches(6000, batch_events=2000):
        for aggregate in batch.aggregates:
            for event in aggregate.collect_events():
                state = dict(vars(event))
                del state["originator_id"], state["originator_version"]
                states.append(state)
    assert len(states) >= 6000
    for state in states:
        data = LIBRARY.encode(state)
        assert FAST.encode(state) == data
        assert typed_tree(FAST.decode(data)) == typed_tree(LIBRARY.decode(data))


def test_the_ledger_uses_it():
    from domain.application import Ledger

    ledger = Ledger("sqlite:///:memory:")
    try:
        assert isinstance(ledger.mapper.transcoder, FastJSONTranscoder)
        assert ledger.mapper.transcoder.encode({"on": date(2026, 12, 1)}) == \
            b'{"on":{"_type_":"date_iso","_data_":"2026-12-01"}}'
        assert ledger.mapper.transcoder.decode(b'{"on":{"_type_":"datetime_iso","_data_":'
                                               b'"2026-12-01T01:00:00+00:00"}}') == \
            {"on": datetime(2026, 12, 1, 1, tzinfo=UTC)}
        assert ledger.mapper.transcoder.encode({"n": Decimal("1.50")}) == \
            b'{"n":{"_type_":"decimal_str","_data_":"1.50"}}'
    finally:
        ledger.close()
