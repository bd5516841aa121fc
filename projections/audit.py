"""Audit history read model: every event of every directive, task and agency, in order.

Table ``aud_event`` (append-only; key = the event's global position): entity type and id,
version and event type, with the ledger time of each row version — an index of the log, one
row per event, written without folding any aggregate (the projection keeps no per-entity
state). It is what "the history of X as the ledger knew it at T" needs: which of X's events
existed at T (the rows' validity) and at which ledger time each arrived.

Everything else an answer shows — who acted, in which role, from which document, the
recorded time, the event's own fields — is in the event itself, and the history query reads
those events anyway (below), so it takes them from there (version 3). Copying them into
every row (version 2) was a tenth of a rebuild's folding and most of the table's size.

The change each event made to its entity's state (a list of ``{path, before, after}``; paths
are JSON Pointers into the state, a list element is ``#i``) and the states before and after
are computed at query time (``entity_steps``): the query folds that one entity's events (tens,
read from the event store up to the last row it selected) with the domain's own ``mutate`` and
diffs the flattened states — a fold of a single entity, never a replay of the log. Storing the
diffs instead made every event's fold cost grow with its entity's whole state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any

from domain.deadlines import Deadline
from projections.base import LogRow, Projection, dumps_plain, entity_type, plain
from projections.tables import TableSpec, dumps, loads

_EVENT_SKIP = {"originator_id", "originator_version", "timestamp", "meta", "originator_topic"}


class AuditProjection(Projection):
    name = "audit"
    title = "Lịch sử / audit history"
    # v2: no stored ``changes``; v3: no copy of the event's time, actor, document and fields
    # (the history query takes them from the events it reads anyway)
    version = 3
    stateless = True
    tables = (
        TableSpec("aud_event", key=("position",),
                  columns=("entity_type", "entity_id", "version", "event_type"),
                  int_columns=frozenset({"position", "version"}),
                  indexes=(("entity_id", "version"),),
                  append_only=True),
    )

    def log_rows(self, event: Any, position: int, ledger_time: str | None) -> list[LogRow]:
        row = (entity_type(event), str(event.originator_id), event.originator_version,
               type(event).__qualname__)
        return [("aud_event", (position,), row)]


def event_details(event: Any, ledger_time: str | None) -> dict[str, Any]:
    """What the history shows of one event besides its place in the log, in the answer's
    order: the recorded time, the ledger time (from the audit row), who acted (principal,
    role, agency), the correlation and causation ids, the source document and the event's
    own fields, as JSON values."""
    meta = getattr(event, "meta", None) or {}
    source = meta.get("source_document")
    return {
        "recorded_at": event.timestamp.isoformat(),
        "ledger_time": ledger_time,
        "actor": {"principal": meta.get("actor"), "role": meta.get("actor_role"),
                  "agency": meta.get("actor_agency")},
        "correlation_id": meta.get("correlation_id"),
        "causation_id": meta.get("causation_id"),
        "source_document": loads(dumps(source)) if source else None,
        "data": loads(event_data(event)),
    }


def event_data(event: Any) -> str:
    """The JSON text of an event's own fields, equal to ``dumps(plain-ified fields)``."""
    fields = {k: v for k, v in vars(event).items() if k not in _EVENT_SKIP}
    return dumps_plain(fields)


def entity_steps(history: Sequence[tuple[int, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(position, changes) for each event of one entity, in version order: the change the
    event made to the entity's flattened state. ``history`` is every event of the entity from
    version 1 on, as (position, domain event); the fold applies the domain's own ``mutate``."""
    aggregate: Any = None
    before: dict[str, Any] = {}
    for position, event in history:
        aggregate = event.mutate(aggregate)
        after = flat_state(aggregate)
        yield position, changes(before, after)
        before = after


def state_of(aggregate: Any) -> dict[str, Any]:
    """An aggregate's state as JSON values (the library's own attributes left out)."""
    return {k: plain(v) for k, v in vars(aggregate).items() if not k.startswith("_")}


def flat_state(aggregate: Any) -> dict[str, Any]:
    """``flatten(state_of(aggregate))`` in one pass (the audit fold's hot path)."""
    out: dict[str, Any] = {}
    for key, value in vars(aggregate).items():
        if not key.startswith("_"):
            _flat_plain(value, f"/{_escape(key)}", out)
    return out


_SCALARS = (str, int, float, bool, type(None))
_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, str], ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple((f.name, _escape(f.name)) for f in dataclasses.fields(cls))
    return names


def _flat_plain(value: Any, prefix: str, out: dict[str, Any]) -> None:
    kind = type(value)
    if kind in _SCALARS:
        out[prefix] = value
    elif kind is date or kind is datetime:
        out[prefix] = value.isoformat()
    elif kind is dict:
        if not value:
            out[prefix] = {}
        for key, item in value.items():
            _flat_plain(item, f"{prefix}/{_escape(str(key))}", out)
    elif kind is list or kind is tuple:
        if not value:
            out[prefix] = []
        for index, item in enumerate(value):
            _flat_plain(item, f"{prefix}/#{index}", out)
    elif isinstance(value, Enum):
        out[prefix] = value.value
    elif dataclasses.is_dataclass(value) and not isinstance(value, Deadline | type):
        for name, escaped in _fields(kind):
            _flat_plain(getattr(value, name), f"{prefix}/{escaped}", out)
    else:
        flatten(plain(value), prefix, out)


# -- flat states and their changes -----------------------------------------------------------


def _escape(key: str) -> str:
    if "~" in key or "/" in key or "#" in key:
        return key.replace("~", "~0").replace("/", "~1").replace("#", "~2")
    return key


def _unescape(segment: str) -> str:
    return segment.replace("~2", "#").replace("~1", "/").replace("~0", "~")


def flatten(value: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """{JSON Pointer: leaf value}; empty containers are leaves, so shapes survive."""
    out = {} if out is None else out
    if isinstance(value, dict) and value:
        for key, item in value.items():
            flatten(item, f"{prefix}/{_escape(str(key))}", out)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            flatten(item, f"{prefix}/#{index}", out)
    else:
        out[prefix] = value
    return out


def unflatten(flat: dict[str, Any]) -> Any:
    root: dict[str, Any] = {}
    for path, value in flat.items():
        if path == "":
            return value
        segments = path.split("/")[1:]
        node: Any = root
        for i, segment in enumerate(segments):
            last = i == len(segments) - 1
            nxt: Any = value if last else ([] if segments[i + 1].startswith("#") else {})
            if segment.startswith("#"):
                index = int(segment[1:])
                while len(node) <= index:
                    node.append(None)
                if last or node[index] is None:
                    node[index] = nxt
                node = node[index]
            else:
                key = _unescape(segment)
                if last or key not in node:
                    node[key] = nxt
                node = node[key]
    return root


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for path in sorted(before.keys() | after.keys()):
        if path in before and path in after and before[path] == after[path]:
            continue
        change: dict[str, Any] = {"path": path}
        if path in before:
            change["before"] = before[path]
        if path in after:
            change["after"] = after[path]
        out.append(change)
    return out


def apply_changes(flat: dict[str, Any], delta: list[dict[str, Any]]) -> dict[str, Any]:
    result = dict(flat)
    for change in delta:
        if "after" in change:
            result[change["path"]] = change["after"]
        else:
            result.pop(change["path"], None)
    return result
