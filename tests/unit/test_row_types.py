"""Every row a projection writes fits its table's column types: PostgreSQL receives them by
binary COPY (``insert_rows``), which takes a text column's value only as ``str`` and an
integer column's only as ``int`` — where the text format had quietly stored ``5`` as "5".
No I/O: the synthetic ledger folded in memory."""

from __future__ import annotations

from collections import Counter
from typing import Any

from projections.base import Projection
from projections.runner import all_projections, entity_type
from projections.tables import TableSpec
from tests.unit.test_render_change import synthetic_events


def misfits(spec: TableSpec, key: tuple[Any, ...], values: tuple[Any, ...]) -> list[str]:
    """The columns of one row (without its version columns) whose value the binary COPY
    would refuse."""
    columns = (*spec.key, *spec.columns)
    assert len(columns) == len(key) + len(values), f"{spec.name}: row of another width"
    out = []
    for column, value in zip(columns, (*key, *values), strict=True):
        wanted = int if column in spec.int_columns else str
        if value is not None and not isinstance(value, wanted):
            out.append(f"{spec.name}.{column} = {value!r} ({type(value).__name__})")
    return out


def rows_of(projection: Projection, events: list[Any]):
    """(table, key, values) of every row version ``projection`` renders or logs."""
    states: dict[Any, Any] = {}
    for position, event in enumerate(events, start=1):
        if entity_type(event) not in projection.entity_types:
            continue
        if projection.stateless:
            yield from projection.log_rows(event, position, "2024-01-01T00:00:00.000000Z")
            continue
        state, _ = projection.fold(states.get(event.originator_id), event, position, None)
        states[event.originator_id] = state
        for table, rows in projection.render(state).items():
            for key, values in rows.items():
                yield table, key, values


def test_every_row_fits_its_columns_types():
    events = list(synthetic_events(12_000))
    written: Counter[str] = Counter()
    wrong: list[str] = []
    for projection in all_projections():
        for table, key, values in rows_of(projection, events):
            written[table] += 1
            wrong += misfits(projection.spec(table), tuple(key), tuple(values))
    assert not wrong, wrong[:10]
    every_table = {spec.name for p in all_projections() for spec in p.tables}
    assert set(written) == every_table  # each table was written, so each was checked


def test_a_number_in_a_text_column_is_found():
    spec = TableSpec(name="t", key=("k",), columns=("text_col", "n"), int_columns=frozenset({"n"}))
    assert misfits(spec, ("a",), ("b", 1)) == []
    assert misfits(spec, ("a",), (5, "1")) == ["t.text_col = 5 (int)", "t.n = '1' (str)"]
