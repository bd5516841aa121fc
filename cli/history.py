"""Inspector's time travel: ``ledger replay --until T [--step]`` and ``ledger diff --from T1
--to T2`` (docs/integrity.md). Moments are ISO 8601, or dd/mm/yyyy meaning the end of that
day in Vietnam; "as of T" is the state the ledger held at recorded time T.
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from typing import Any
from uuid import UUID

import typer
from rich.table import Table

from cli.common import EXIT_USAGE, console, fail, open_ledger, print_json, to_json
from cli.integrity import progress_bar
from cli.main import DB_OPTION, JSON_OPTION, app
from domain.clock import LOCAL_TZ, format_date_vn, format_datetime_vn, parse_moment
from domain.errors import NotFound
from domain.integrity.history import diff, state_as_of, walk_history
from domain.rules import TaskStatus


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError as exc:
        fail(f"{option}: {exc}", EXIT_USAGE)


def _moment_vn(moment: datetime) -> str:
    """dd/mm/yyyy HH:MM in Vietnam; a day's end (24:00) as "hết ngày dd/mm/yyyy"."""
    local = moment.astimezone(LOCAL_TZ)
    if local.time() == time(0):
        return f"hết ngày {format_date_vn(local.date() - timedelta(days=1))}"
    return format_datetime_vn(moment)


def _status_vi(value: str | None) -> str:
    return TaskStatus(value).label_vi if value else "—"


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(to_json(value), ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _entity_id(ledger: Any, reference: str) -> UUID:
    """A task ('768/QĐ-UBND#6.8' or id), an agency code, or a directive number."""
    if "#" in reference:
        return ledger.find_task(reference).id
    try:
        return UUID(reference)
    except ValueError:
        pass
    if ledger.agency_exists(reference):
        return ledger.agency(reference).id
    try:
        return ledger.find_directive(reference).id
    except NotFound:
        fail(f"{reference!r} is neither a task, an agency code nor a directive number",
             EXIT_USAGE)


@app.command("replay")
def replay(
    until: str = typer.Option(..., "--until", help="The moment (ISO 8601 or dd/mm/yyyy)."),
    step: bool = typer.Option(False, "--step", help="Walk the history event by event."),
    since: str | None = typer.Option(None, "--since", help="With --step: start after this."),
    entity: str | None = typer.Option(
        None, "--entity", help="With --step: only this task, agency or directive."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """The state of everything as of a recorded moment, or (--step) the history up to it."""
    moment = _moment(until, "--until")
    assert moment is not None
    if not step and (since or entity):
        fail("--since and --entity go with --step", EXIT_USAGE)
    with open_ledger(db) as ledger:
        if step:
            _replay_steps(ledger, moment, _moment(since, "--since"),
                          _entity_id(ledger, entity) if entity else None, as_json)
            return
        with progress_bar("Replaying", not as_json) as (advance, total):
            total(ledger.recorder.max_notification_id() or 0)
            state = state_as_of(ledger, moment, progress=advance)
    if as_json:
        print_json(state.as_json())
        return
    console.print(f"[bold]Sổ theo dõi: {_moment_vn(moment)}[/] (as of "
                  f"{moment.isoformat()}; events up to position {state.position}); "
                  f"statuses judged on {format_date_vn(state.on)}")
    table = Table(title="Văn bản chỉ đạo")
    for column in ("Số", "Ngày", "Trích yếu", "Nhiệm vụ", "Thu hồi"):
        table.add_column(column)
    for d in state.directives:
        table.add_row(d["number"], format_date_vn(_date(d["issued_on"])), _short(d["title"]),
                      str(d["tasks"]), format_date_vn(_date(d["revoked_on"])))
    console.print(table)
    table = Table(title="Nhiệm vụ")
    for column in ("Nhiệm vụ", "Chủ trì", "Kỳ", "Hạn", "Tình trạng"):
        table.add_column(column)
    for t in state.tasks:
        for o in t["obligations"]:
            table.add_row(t["label"], t["lead"], o["occurrence"] or "",
                          format_date_vn(_date(o["due_on"])), _status_vi(o["status"]))
    console.print(table)
    table = Table(title="Cơ quan, đơn vị")
    for column in ("Mã", "Tên", "Tình trạng", "Người đứng đầu"):
        table.add_column(column)
    for a in state.agencies:
        head = a["head"]
        who = (f"{head['person']} ({head['position']}, từ "
               f"{format_date_vn(_date(head['from_on']))})") if head else ""
        table.add_row(a["code"], a["name"], a["status"], who)
    console.print(table)


def _date(text: str | None):
    from datetime import date

    return date.fromisoformat(text) if text else None


def _replay_steps(ledger: Any, until: datetime, since: datetime | None, entity: UUID | None,
                  as_json: bool) -> None:
    shown = 0
    for s in walk_history(ledger, until, since, entity):
        shown += 1
        if as_json:
            typer.echo(json.dumps(to_json(s.as_json()), ensure_ascii=False))
            continue
        actor = s.meta.get("actor") or ""
        console.print(f"[bold]#{s.position}[/] {format_datetime_vn(s.recorded_at)} "
                      f"{s.event_type} {s.label} v{s.version} — {actor}")
        if s.before is None:
            console.print("  (new) " + _short(
                {k: v for k, v in s.after.items() if v not in (None, [], {})}, 160))
        for field, before, after in s.changed if s.before is not None else []:
            console.print(f"  {field}: {_short(before)} → {_short(after)}")
    if not as_json and shown == 0:
        console.print("No events in that period.")


@app.command("diff")
def diff_command(
    start: str = typer.Option(..., "--from", help="First moment (ISO 8601 or dd/mm/yyyy)."),
    end: str = typer.Option(..., "--to", help="Second moment (ISO 8601 or dd/mm/yyyy)."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """What changed between two moments: events, entities, task statuses."""
    t1, t2 = _moment(start, "--from"), _moment(end, "--to")
    assert t1 is not None and t2 is not None
    with open_ledger(db) as ledger:
        with progress_bar("Replaying", not as_json) as (advance, total):
            total(ledger.recorder.max_notification_id() or 0)
            result = diff(ledger, t1, t2, progress=advance)
    if as_json:
        print_json(result.as_json())
        return
    console.print(f"[bold]Từ {_moment_vn(t1)} đến {_moment_vn(t2)}[/]: "
                  f"{sum(result.events.values())} events (positions "
                  f"{result.from_position + 1}–{result.to_position})")
    for kind, count in sorted(result.events.items()):
        console.print(f"  {kind}: {count}")
    if result.entities:
        table = Table(title="Đối tượng thay đổi")
        for column in ("Loại", "Đối tượng", "Thay đổi"):
            table.add_column(column)
        for c in result.entities:
            what = "mới" if c.created else "; ".join(
                f"{f}: {_short(b, 30)} → {_short(a, 30)}" for f, b, a in c.fields)
            table.add_row(c.entity_type, c.label, what)
        console.print(table)
    if result.statuses:
        table = Table(title="Tình trạng nhiệm vụ")
        for column in ("Nhiệm vụ", "Kỳ", "Trước", "Sau"):
            table.add_column(column)
        for s in result.statuses:
            table.add_row(s["task"], s["occurrence"] or "", _status_vi(s["before"]),
                          _status_vi(s["after"]))
        console.print(table)
