"""Versioned read-model tables: every row carries the interval of the log it is valid for.

A row is valid from the position of the event that produced it (``from_pos``) until the
position of the event that replaced or removed it (``to_pos``, NULL while current). The same
interval is kept as ledger time (``from_time``/``to_time``: the running maximum of the events'
recorded times, ISO 8601 UTC text, so it sorts as it compares). An as-of query is therefore an
indexed lookup — ``from_pos <= P AND (to_pos IS NULL OR to_pos > P)`` — never a replay, and
rows valid at a position already committed never change afterwards, so a reader pinned to a
position sees a consistent picture even while pages commit around it.

A table's physical name carries its generation (``obl_task_g3``): a rebuild fills a fresh
generation beside the live one and the registry switches between them atomically.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from projections.db import Cursor, Db

VERSION_COLUMNS = ("from_pos", "to_pos", "from_time", "to_time")
_INT_VERSION_COLUMNS = frozenset({"from_pos", "to_pos"})
BEGINNING = "0001-01-01T00:00:00.000000Z"  # ledger time before the first event
# Later than every stored day and ledger time: what an unset one compares as (``or_unset``).
# ISO texts of one width compare by their digits under any collation, so this holds under
# the database's, whichever it is.
UNSET = "9999-12-31T23:59:59.999999Z"

Key = tuple[Any, ...]
Values = tuple[Any, ...]
Rows = dict[str, dict[Key, Values]]  # table -> key -> values


def ledger_time_text(moment: datetime | None) -> str:
    """Ledger time as stored: UTC, fixed width, so text order is time order
    (``YYYY-MM-DDTHH:MM:SS.ffffffZ``). A rebuild writes one per event: ``isoformat`` cut at
    the offset costs about half of ``strftime``."""
    if moment is None:
        return BEGINNING
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")[:26] + "Z"


_EPOCH_DAY = date(1970, 1, 1)
_DAYS: dict[int, str] = {}  # days since the epoch -> "YYYY-MM-DD": a ledger spans a few thousand
_DAYS_KEPT = 100_000
_HOURS_MINUTES = [f"T{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
_SECONDS = [f"{s:02d}." for s in range(60)]


def micros_ledger_time(micros: int) -> str:
    """``ledger_time_text`` of the moment ``micros`` microseconds after the Unix epoch (UTC).

    A rebuild keeps each position's ledger time as such a number and writes its text once per
    event folded: built from cached pieces this takes a quarter of the time of making the
    datetime and formatting it (a million events: ~2.5 s of CPU in a slow hour)."""
    seconds, fraction = divmod(micros, 1_000_000)
    days, second_of_day = divmod(seconds, 86_400)
    day = _DAYS.get(days)
    if day is None:
        if len(_DAYS) >= _DAYS_KEPT:
            _DAYS.clear()
        day = _DAYS[days] = (_EPOCH_DAY + timedelta(days=days)).isoformat()
    minute_of_day, second = divmod(second_of_day, 60)
    return (day + _HOURS_MINUTES[minute_of_day] + _SECONDS[second]
            + str(1_000_000 + fraction)[1:] + "Z")


def parse_ledger_time(text: str | None) -> datetime | None:
    if not text or text == BEGINNING:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def dumps(value: Any) -> str:
    """Canonical JSON text for JSON columns (sorted keys: equal values, equal text)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str  # logical name, e.g. "obl_task"
    key: tuple[str, ...]
    columns: tuple[str, ...]
    int_columns: frozenset[str] = frozenset()  # every other column is TEXT
    indexes: tuple[tuple[str, ...], ...] = ()
    append_only: bool = False  # rows are never replaced (the audit log)
    # An index that answers one hot query without visiting the table: (key columns, the
    # columns it carries besides). PostgreSQL stores the latter with INCLUDE and reads them
    # by an index-only scan once VACUUM has marked the pages all-visible; SQLite, which has no
    # INCLUDE, gets them as trailing key columns (its covering indexes).
    covering: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    # PostgreSQL: once a rebuilt copy is filled, rewrite its rows in primary-key order
    # (CLUSTER), so the rows a query reads by a key prefix share a few pages instead of
    # one page each. Rows folded later are appended in arrival order, until the next rebuild.
    clustered: bool = False
    # An index for the rows of a key valid at a ledger time (``valid_at('time')``: the
    # questions "as of" a moment): the key's leading ``columns``, the version's end and start,
    # then ``unset_days`` (compared as "unset or later than a day", ``or_unset``). It rejects
    # the versions a question does not want itself, where the primary key leaves them to be
    # read from the table and dropped: an agency's links at 1M events are ~15,000 versions,
    # of which a question keeps ~3,500-4,600.
    as_of_index: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    @property
    def all_columns(self) -> tuple[str, ...]:
        return (*self.key, *self.columns, *VERSION_COLUMNS)

    def is_int(self, column: str) -> bool:
        """Whether ``column`` (of ``all_columns``) holds integers; every other is TEXT."""
        return column in self.int_columns or column in _INT_VERSION_COLUMNS

    @property
    def copy_types(self) -> list[str]:
        """PostgreSQL's type of each of ``all_columns``, for a binary COPY."""
        return ["int8" if self.is_int(column) else "text" for column in self.all_columns]

    def physical(self, generation: int) -> str:
        return f"{self.name}_g{generation}"

    def describe(self) -> str:
        """Stable text of the layout, part of a projection's fingerprint."""
        return (f"{self.name}({','.join(self.key)};{','.join(self.columns)};"
                f"int={','.join(sorted(self.int_columns))};"
                f"idx={'|'.join(','.join(i) for i in self.indexes)}"
                + (f";cover={','.join(self.covering[0])}+{','.join(self.covering[1])}"
                   if self.covering else "")
                + (f";asof={','.join(self.as_of_index[0])}+{','.join(self.as_of_index[1])}"
                   if self.as_of_index else "") + ")")

    def ddl(self, db: Db, generation: int, *, indexes: bool = True,
            primary_key: bool = True) -> list[str]:
        """CREATE TABLE (with its primary key, which closing a row version looks up, unless
        ``primary_key=False``: ``primary_key_ddl`` adds it later) and, unless
        ``indexes=False``, its secondary indexes (``index_ddl``)."""
        table = self.physical(generation)
        name = db.name(table)

        def column(col: str, not_null: bool = False) -> str:
            kind = db.bigint if self.is_int(col) else "TEXT"
            return f"{col} {kind}{' NOT NULL' if not_null else ''}"

        columns = [column(c, True) for c in self.key] + [column(c) for c in self.columns]
        columns += [column("from_pos", True), column("to_pos"),
                    column("from_time", True), column("to_time")]
        if primary_key:
            columns.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        statements = [f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(columns)})"]
        return statements + (self.index_ddl(db, generation) if indexes else [])

    @property
    def primary_key(self) -> tuple[str, ...]:
        return (*self.key, "from_pos")

    def primary_key_ddl(self, db: Db, generation: int) -> str:
        """The primary key of a table created without it (PostgreSQL): built once from the
        filled table, under the name PostgreSQL gives one declared with the table."""
        table = self.physical(generation)
        return (f"ALTER TABLE {db.name(table)} ADD CONSTRAINT {table}_pkey "
                f"PRIMARY KEY ({', '.join(self.primary_key)})")

    def index_ddl(self, db: Db, generation: int) -> list[str]:
        name = db.name(self.physical(generation))
        columns = [f"({', '.join(cols)})" for cols in self.indexes]
        if self.covering:
            key, carried = self.covering
            columns.append(f"({', '.join(key)}) INCLUDE ({', '.join(carried)})"
                           if db.dialect == "postgres" else f"({', '.join((*key, *carried))})")
        if self.as_of_index:
            leading, unset_days = self.as_of_index
            parts = (*leading, f"({or_unset('to_time')})", "from_time",
                     *(f"({or_unset(column)})" for column in unset_days))
            columns.append(f"({', '.join(parts)})")
        return [f"CREATE INDEX IF NOT EXISTS {index} ON {name} {cols}"
                for index, cols in zip(self.index_names(generation), columns, strict=True)]

    def index_names(self, generation: int) -> list[str]:
        table = self.physical(generation)
        return ([f"{table}_i{i}" for i in range(len(self.indexes))]
                + ([f"{table}_c"] if self.covering else [])
                + ([f"{table}_t"] if self.as_of_index else []))


def or_unset(column: str, alias: str = "") -> str:
    """A day or ledger-time column whose NULL means "not (yet)" (a current version's end, a
    task not settled), as an expression that reads NULL as later than any value: how the
    queries compare such a column, and how a ``TableSpec.as_of_index`` stores it (PostgreSQL
    uses an index on an expression only for a condition spelling the same expression)."""
    a = f"{alias}." if alias else ""
    return f"COALESCE({a}{column}, '{UNSET}')"


def valid_at(mode: str, alias: str = "") -> str:
    """The SQL condition selecting rows valid at a position (``mode='pos'``) or a ledger time
    (``mode='time'``); takes the bound value twice. The time axis spells an unset end with
    ``or_unset``, as ``TableSpec.as_of_index`` stores it; the positions' axis has no such
    index (tried: benchmarks/README.md, item 5), so its plain spelling stays."""
    a = f"{alias}." if alias else ""
    if mode == "pos":
        return f"{a}from_pos <= %s AND ({a}to_pos IS NULL OR {a}to_pos > %s)"
    return f"{a}from_time <= %s AND {or_unset('to_time', alias)} > %s"


class PageWriter:
    """Collects one page's row versions in memory and writes them in a few statements.

    ``diff`` compares an entity's rows before and after an event: a changed or removed row
    gets its ``to_pos`` set, a changed or new row gets a new version from this event's
    position. Versions created and replaced inside the same page are closed in memory, so the
    database sees one INSERT per version and one UPDATE per row that was current before the
    page."""

    def __init__(self, specs: Sequence[TableSpec]) -> None:
        self.specs = {s.name: s for s in specs}
        self.inserts: dict[str, list[list[Any]]] = defaultdict(list)
        self.fresh: dict[str, dict[Key, int]] = defaultdict(dict)
        self.closes: dict[str, list[tuple[Any, ...]]] = defaultdict(list)

    def __len__(self) -> int:
        return sum(map(len, self.inserts.values())) + sum(map(len, self.closes.values()))

    def _close(self, table: str, key: Key, position: int, time: str) -> None:
        index = self.fresh[table].pop(key, None)
        if index is not None:
            row = self.inserts[table][index]
            row[-3], row[-1] = position, time
        else:
            self.closes[table].append((position, time, *key))

    def _insert(self, table: str, key: Key, values: Values, position: int, time: str) -> None:
        rows = self.inserts[table]
        self.fresh[table][key] = len(rows)
        rows.append([*key, *values, position, None, time, None])

    def diff(self, before: Rows, after: Rows, position: int, time: str) -> None:
        empty: dict[Key, Values] = {}
        for table, new in after.items():
            old = before.get(table, empty)
            if old is new or old == new:
                continue
            for key, value in new.items():
                previous = old.get(key)
                if previous == value:
                    continue
                if previous is not None:
                    self._close(table, key, position, time)
                self._insert(table, key, value, position, time)
            for key in old.keys() - new.keys():
                self._close(table, key, position, time)
        for table, old in before.items():
            if table not in after:
                for key in old:
                    self._close(table, key, position, time)

    def append(self, table: str, key: Key, values: Values, position: int, time: str) -> None:
        self.inserts[table].append([*key, *values, position, None, time, None])

    def flush(self, cur: Cursor, db: Db, generation: int) -> None:
        for table, rows in self.closes.items():
            spec = self.specs[table]
            where = " AND ".join(f"{k}=%s" for k in spec.key)
            cur.executemany(
                f"UPDATE {db.name(spec.physical(generation))} SET to_pos=%s, to_time=%s "
                f"WHERE {where} AND to_pos IS NULL",
                rows,
            )
        for table, rows in self.inserts.items():
            if rows:
                insert_rows(cur, db, self.specs[table], generation, rows)


def insert_rows(cur: Cursor, db: Db, spec: TableSpec, generation: int,
                rows: Sequence[Sequence[Any]]) -> None:
    name = db.name(spec.physical(generation))
    columns = spec.all_columns
    if db.dialect == "postgres" and len(rows) >= 32:
        # COPY is several times faster than batched INSERTs for a rebuild's big pages; in
        # binary format psycopg sends each text as it is and each integer as 8 bytes, where
        # the text format had it escape and format every value (half of its CPU).
        with cur.raw.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
                          ) as copy:
            copy.set_types(spec.copy_types)
            for row in rows:
                copy.write_row(row)
        return
    placeholders = ", ".join(["%s"] * len(columns))
    cur.executemany(f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({placeholders})", rows)


def table_digest(cur: Cursor, db: Db, spec: TableSpec, generation: int,
                 at: tuple[str, Any] | None = None) -> str:
    """SHA-256 of a table's rows in key order. With ``at=('pos', P)`` or ``('time', T)``:
    of the rows valid then, without their version columns (what an as-of query sees)."""
    name = db.name(spec.physical(generation))
    order = ", ".join((*spec.key, "from_pos"))
    if at is None:
        cur.execute(f"SELECT {', '.join(spec.all_columns)} FROM {name} ORDER BY {order}")
    else:
        mode, value = at
        cur.execute(f"SELECT {', '.join((*spec.key, *spec.columns))} FROM {name} "
                    f"WHERE {valid_at(mode)} ORDER BY {order}", (value, value))
    digest = hashlib.sha256()
    count = 0
    for row in cur.fetchall():
        digest.update(orjson.dumps(list(row)))
        count += 1
    digest.update(str(count).encode())
    return digest.hexdigest()


def rows_of(rendered: Iterable[tuple[str, Key, Values]]) -> Rows:
    out: Rows = defaultdict(dict)
    for table, key, values in rendered:
        out[table][key] = values
    return dict(out)
