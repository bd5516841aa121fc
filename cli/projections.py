"""Read-model commands: ``projections status``, ``rebuild``, ``obligations``,
``accountability``, ``history``, ``worker``.

Reads answer from the projection tables (``projections.queries``). By default a read first
catches the projections up with the log, so a single-user SQLite ledger needs no worker;
``--no-catch-up`` reads whatever the workers have folded.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from cli.common import (
    EXIT_REFUSED,
    EXIT_USAGE,
    console,
    err_console,
    fail,
    open_ledger,
    open_ledger_when_reachable,
    print_json,
)
from cli.main import DB_OPTION, JSON_OPTION, app
from domain.accountability import Period
from domain.clock import (
    LOCAL_TZ,
    format_date_vn,
    format_datetime_vn,
    parse_date,
    parse_moment,
)
from domain.errors import DomainError
from domain.rules import TaskStatus
from projections.queries import ReadModels
from projections.rebuild import RebuildInProgress, rebuild
from projections.runner import (
    OutdatedProjection,
    PacedCollector,
    Runner,
    projections_named,
    run_worker,
)

projections_app = typer.Typer(help="Read models: state and upkeep.", no_args_is_help=True)
app.add_typer(projections_app, name="projections")

AS_OF = typer.Option(None, "--as-of",
                     help="What the ledger knew at this moment: ISO 8601, or dd/mm/yyyy "
                          "meaning the end of that day (Vietnam time).")
AS_OF_POSITION = typer.Option(None, "--as-of-position", min=0,
                              help="What the ledger knew up to this event position.")
ON = typer.Option(None, "--on", help="Judge statuses on this day (dd/mm/yyyy); default: the "
                                     "day of --as-of, else today.")
CATCH_UP = typer.Option(True, "--catch-up/--no-catch-up",
                        help="Fold new events into the projections before reading.")

ROLE_VI = {"lead": "chủ trì", "coordinating": "phối hợp", "group_lead": "chủ trì (nhóm)",
           "group_coordinating": "phối hợp (nhóm)"}
STATUS_STYLE = {"overdue": "bold red", "done_late": "yellow", "done_on_time": "green",
                "in_progress": "cyan"}
KIND_VI = {"done_late": "hoàn thành trễ hạn", "overdue": "quá hạn",
           "overdue_at_period_end": "quá hạn tại thời điểm cuối kỳ",
           "completion_rejected": "báo cáo hoàn thành bị trả lại"}


def vn(iso: str | None) -> str:
    """An ISO date (or moment) as people read it."""
    if not iso:
        return ""
    if "T" in iso:
        return format_datetime_vn(datetime.fromisoformat(iso))
    return format_date_vn(date.fromisoformat(iso))


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--as-of") from None


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return parse_date(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--on") from None


class RateColumn(ProgressColumn):
    """Events folded per second."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} sự kiện/s" if speed else "… sự kiện/s")


# What a rebuild does once the bar is full (``projections.rebuild.rebuild``'s ``phase``).
REBUILD_PHASES = {"indexes": "khoá, chỉ mục, thống kê", "switch": "chuyển sang bản mới",
                  "grace": "chờ người đọc bản cũ"}


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    RateColumn(), TimeRemainingColumn(), console=err_console, transient=False)


def catch_up(ledger: Any, show_from: int = 5000) -> None:
    """Fold new events first; a progress bar when there are many."""
    runner = Runner(ledger)
    runner.sync()
    head = runner.db.head_position()
    if head - runner.min_position() < show_from:
        runner.catch_up()
        return
    with progress_bar() as bar:
        task = bar.add_task("Cập nhật dữ liệu tổng hợp", total=head,
                            completed=runner.min_position())
        runner.catch_up(progress=lambda done, total: bar.update(task, completed=done,
                                                                 total=total))


def _models(ledger: Any, catch: bool) -> ReadModels:
    try:
        if catch:
            catch_up(ledger)
        return ReadModels(ledger)
    except OutdatedProjection as exc:
        fail(str(exc), EXIT_REFUSED)


def _basis(result: dict[str, Any]) -> str:
    meta = result["as_of"]
    if meta["as_of"]:
        moment = datetime.fromisoformat(meta["as_of"]).astimezone(LOCAL_TZ)
        when = (f"hết ngày {format_date_vn((moment - timedelta(days=1)).date())}"
                if moment.time() == dt_time(0) else format_datetime_vn(moment))
        return f"theo những gì sổ đã ghi nhận đến {when}"
    return f"theo dữ liệu đến sự kiện #{meta['projection_position']}"


# -- status, rebuild, worker -----------------------------------------------------------------


@projections_app.command("status")
def status(
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
    max_lag: int | None = typer.Option(
        None, "--max-lag", min=0,
        help="Health check: exit 1 if a projection is more events behind than this (or "
             "outdated)."),
) -> None:
    """Position, ledger time and lag of each projection, and any rebuild under way."""
    with open_ledger(db) as ledger:
        result = ReadModels(ledger).status()
    if max_lag is not None:
        behind = [p for p in result["projections"] if p["lag"] > max_lag or p["outdated"]]
        if behind:
            fail("; ".join(
                f"{p['name']} is {'outdated' if p['outdated'] else str(p['lag']) + ' events'}"
                f" behind" for p in behind) + f" (allowed: {max_lag})")
    if as_json:
        print_json(result)
        return
    table = Table(title=f"Dữ liệu tổng hợp — sổ có {result['head']} sự kiện")
    for column in ("Mô hình", "Bản", "Vị trí", "Chậm", "Thời điểm sổ", "Cập nhật", "Ghi chú"):
        table.add_column(column)
    for p in result["projections"]:
        notes = []
        if p["outdated"]:
            notes.append(f"[red]cần dựng lại: ledger rebuild {p['name']}[/]")
        notes += [f"đang dựng bản {r['generation']} ({r['state']}, #{r['position']}, "
                  f"{r['owner']})" for r in p["rebuilding"]]
        table.add_row(p["name"], str(p["generation"]), str(p["position"]),
                      f"[{'red' if p['lag'] else 'green'}]{p['lag']}[/]",
                      vn(p["ledger_time"]), vn(p["updated_at"]), "; ".join(notes))
    console.print(table)


@app.command("rebuild")
def rebuild_command(
    name: str | None = typer.Argument(None, help="obligations | accountability | audit"),
    all_: bool = typer.Option(False, "--all", help="Rebuild every projection."),
    page_size: int = typer.Option(2000, "--page-size", min=1, max=100_000),
    grace: float = typer.Option(2.0, "--grace", min=0,
                                help="Seconds to keep the old copy for readers still on it."),
    jobs: int | None = typer.Option(
        None, "--jobs", min=1, max=32,
        help="Processes folding side by side, each a share of the entities (PostgreSQL). "
             "Default: 2 from 100,000 events on a machine with two cores or more, else 1."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Build fresh copies from the first event beside the live ones, then switch readers
    over atomically; the old copies serve readers until then."""
    if all_ == (name is not None):
        fail("name one projection or give --all", EXIT_USAGE)
    try:
        names = None if all_ else [p.name for p in projections_named([name])]
    except KeyError as exc:
        fail(str(exc.args[0]), EXIT_USAGE)
    with open_ledger(db) as ledger:
        started = time.monotonic()
        try:
            with progress_bar() as bar:
                label = f"Dựng lại {name or 'tất cả'}"
                task = bar.add_task(label, total=None)
                result = rebuild(ledger, names, page_size=page_size, grace=grace, jobs=jobs,
                                 progress=lambda done, head: bar.update(task, completed=done,
                                                                        total=head),
                                 phase=lambda step: bar.update(
                                     task, description=f"{label}: {REBUILD_PHASES[step]}"))
                bar.update(task, description=label)
        except RebuildInProgress as exc:
            fail(str(exc), EXIT_REFUSED)
    seconds = time.monotonic() - started
    if as_json:
        print_json({"projections": result, "seconds": round(seconds, 3)})
        return
    for projection, r in result.items():
        console.print(f"{projection}: generation {r['generation']} is live at position "
                      f"{r['position']} (replaced generation {r['old_generation']}, which was at "
                      f"{r['old_position']}).")
    console.print(f"Done in {seconds:.1f}s.")


@app.command("worker")
def worker(
    poll: float = typer.Option(2.0, "--poll", min=0.05,
                               help="Seconds between polls (PostgreSQL also wakes on NOTIFY)."),
    page_size: int = typer.Option(500, "--page-size", min=1, max=100_000),
    once: bool = typer.Option(False, "--once", help="Catch up once and exit."),
    checkpoint_every: float = typer.Option(
        300.0, "--checkpoint-every", min=0,
        help="Sign a checkpoint of the hash chain this often (seconds) when a signing key is "
             "available (LEDGER_SIGNING_KEY or ~/.config/chidao-ledger/signing-key.pem); "
             "0 turns it off."),
    db: str | None = DB_OPTION,
) -> None:
    """Keep the projections up to date with the ledger until interrupted (SIGINT/SIGTERM);
    also seal the hash chain with periodic signed checkpoints when it has a key. A PostgreSQL
    store that cannot be reached at start-up is waited for, as outages are once it runs."""
    if once:
        with open_ledger(db) as ledger:
            folded = Runner(ledger, page_size=page_size).catch_up()
            console.print(f"Folded {folded} events.")
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def unreachable(exc: Exception, wait: float) -> None:
        err_console.print(f"{datetime.now():%H:%M:%S} ledger worker: the ledger store cannot "
                          f"be reached ({' '.join(str(exc).split())}); trying again in "
                          f"{wait:g}s", markup=False)

    with open_ledger_when_reachable(db, stop, unreachable) as ledger:
        if ledger is None:
            err_console.print("ledger worker: stopped before the ledger store could be reached")
            return
        timer = _checkpoint_timer(ledger, checkpoint_every)
        wake = ", LISTEN/NOTIFY" if ledger.store.dialect == "postgres" else ""
        err_console.print(f"ledger worker: following {ledger.store.redacted} "
                          f"(poll {poll}s{wake})")

        warned: set[str] = set()

        def report(runner: Runner, folded: int) -> None:
            if folded:
                err_console.print(f"{datetime.now():%H:%M:%S} folded {folded} events; at "
                                  f"position {runner.min_position()}")
            for name in sorted(runner.outdated - warned):
                err_console.print(f"[red]{name} is outdated and left alone: run "
                                  f"ledger rebuild {name}[/]")
            warned.intersection_update(runner.outdated)
            warned.update(runner.outdated)

        try:
            run_worker(ledger, stop=stop, poll=poll, page_size=page_size, on_progress=report,
                       collector=PacedCollector())
        finally:
            if timer is not None:
                timer.stop()
        err_console.print("ledger worker: stopped")


def _checkpoint_timer(ledger, every: float):
    """Periodic signed checkpoints (docs/integrity.md), if a signing key is available."""
    from domain.integrity.keys import load_signing_key, signing_key_path
    from domain.integrity.operations import CheckpointTimer

    if every <= 0 or not signing_key_path().exists():
        if every > 0:
            err_console.print("ledger worker: no signing key, so no periodic checkpoints "
                              "(create one with: ledger keys create)")
        return None

    def report(exc: Exception) -> None:
        err_console.print(f"[red]checkpoint failed: {' '.join(str(exc).split())}[/]")

    timer = CheckpointTimer(ledger, load_signing_key(), interval=every, on_error=report)
    err_console.print(f"ledger worker: signing a checkpoint every {every:g}s when new events")
    return timer.start()


# -- obligations -----------------------------------------------------------------------------


@app.command("obligations")
def obligations(
    agency: str | None = typer.Option(None, "--agency", help="Agency code, e.g. QNG-SNV."),
    directive: str | None = typer.Option(None, "--directive",
                                         help="A directive's number instead: its progress."),
    as_of: str | None = AS_OF,
    as_of_position: int | None = AS_OF_POSITION,
    on: str | None = ON,
    include_closed: bool = typer.Option(False, "--all", help="Also done and cancelled ones."),
    catch: bool = CATCH_UP,
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """What an agency owes (as lead, coordinator, or member of a group), with effective and
    original due dates, status, days overdue and extensions; or a directive's progress;
    without either, every answering agency's obligations by status and nearest due date."""
    if agency is not None and directive is not None:
        fail("give --agency CODE or --directive NUMBER, not both", EXIT_USAGE)
    if include_closed and agency is None:
        fail("--all lists one agency's obligations: give --agency CODE", EXIT_USAGE)
    moment, day = _moment(as_of), _day(on)
    when = {"as_of": moment, "as_of_position": as_of_position, "effective_on": day}
    with open_ledger(db) as ledger:
        models = _models(ledger, catch)
        if directive is not None:
            result = models.directive_summary(directive, **when)
        elif agency is not None:
            result = models.obligations(agency, include_closed=include_closed, **when)
        else:
            result = models.obligation_counts(**when)
    if as_json:
        print_json(result)
    elif directive is not None:
        _print_directive(result)
    elif agency is not None:
        _print_obligations(result)
    else:
        print_counts(result)


def print_counts(result: dict[str, Any]) -> None:
    """``obligation_counts`` as a table: the agencies with most overdue first."""
    table = Table(title=f"Nghĩa vụ theo cơ quan chủ trì, ngày {vn(result['effective_on'])} "
                        f"({_basis(result)})")
    for column in ("Cơ quan chủ trì", "Quá hạn", "Đang thực hiện", "Chưa đến hạn",
                   "Không thời hạn", "Hoàn thành", "Hạn gần nhất"):
        table.add_column(column, justify="left" if column == "Cơ quan chủ trì" else "right")
    rows = sorted(result["agencies"], key=lambda a: (-a["counts"].get("overdue", 0),
                                                     a["agency"]))
    for agency in rows:
        c = agency["counts"]
        done = sum(n for status, n in c.items() if TaskStatus(status).is_done)
        name = agency["name"] or ""
        table.add_row(f"{agency['agency']} {name[:38]}",
                      f"[bold red]{c.get('overdue', 0)}[/]", str(c.get("in_progress", 0)),
                      str(c.get("not_due", 0)), str(c.get("no_deadline", 0)), str(done),
                      vn(agency["next_due"]))
    console.print(table)
    if not rows:
        console.print("Không có nghĩa vụ.")


def _counts_text(counts: dict[str, int]) -> str:
    return "; ".join(f"{TaskStatus(k).label_vi}: {v}" for k, v in counts.items())


def _status_cell(row: dict[str, Any]) -> str:
    style = STATUS_STYLE.get(row["status"], "")
    return f"[{style}]{row['status_label']}[/]" if style else row["status_label"]


def _print_obligations(result: dict[str, Any]) -> None:
    info = result["agency"]
    head = info["head"]
    console.print(f"[bold]{info['name']}[/] ({info['code']})"
                  + (f" — {head['position']}: {head['person']}" if head else "")
                  + (f" — [red]{info['status']} {vn(info['ended_on'])}[/]"
                     if info["status"] != "active" else ""))
    console.print(f"Nghĩa vụ ngày {vn(result['effective_on'])}, {_basis(result)}")
    console.print(_counts_text(result["counts"]) or "Không có nghĩa vụ.")
    table = Table(show_lines=False)
    for column in ("Nhiệm vụ", "Vai trò", "Kỳ", "Hạn gốc", "Hạn hiện tại", "Tình trạng",
                   "Quá hạn", "Gia hạn", "Nội dung"):
        table.add_column(column, overflow="fold")
    for row in result["obligations"]:
        extensions = row["extensions"]
        ext = ""
        if extensions["requested"]:
            ext = f"{extensions['granted']}/{extensions['requested']}"
            if extensions["pending_due"]:
                ext += f" (chờ: {vn(extensions['pending_due'])})"
        role = ROLE_VI.get(row["role"], row["role"])
        if row["via"] and not row["role"].startswith("group"):
            role += f" (thay {row['via']})"
        elif row["via"]:
            role += f" {row['via']}"
        due = vn(row["due_on"]) if row["due_on"] else row["deadline_text"]
        table.add_row(row["reference"], role, row["occurrence"] or "",
                      vn(row["original_due"]), due, _status_cell(row),
                      str(row["days_overdue"] or ""), ext, row["content"][:70])
    console.print(table)


def _print_directive(result: dict[str, Any]) -> None:
    d = result["directive"]
    console.print(f"[bold]{d['doc_type']} {d['number']}[/] ngày {vn(d['issued_on'])} — "
                  f"{d['title']}")
    console.print(f"Tiến độ ngày {vn(result['effective_on'])}, {_basis(result)}")
    console.print(_counts_text(result["counts"]))
    table = Table()
    for column in ("TT", "Chủ trì", "Kỳ", "Hạn", "Tình trạng", "Quá hạn"):
        table.add_column(column)
    for row in result["obligations"]:
        table.add_row(row["ordinal"], row["lead"], row["occurrence"] or "",
                      vn(row["due_on"]) if row["due_on"] else row["deadline_text"],
                      _status_cell(row), str(row["days_overdue"] or ""))
    console.print(table)


# -- accountability --------------------------------------------------------------------------


@app.command("accountability")
def accountability(
    period: str = typer.Option(..., "--period", help="2024, 2024-Q2 or 2024-H1."),
    agency: str | None = typer.Option(None, "--agency", help="Only this agency's heads."),
    as_of: str | None = AS_OF,
    as_of_position: int | None = AS_OF_POSITION,
    on: str | None = ON,
    details: bool = typer.Option(False, "--details",
                                 help="List every shortfall with its evidence."),
    catch: bool = CATCH_UP,
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Heads' accountability for a period (QĐ 01/2024/QĐ-UBND; provisional rulebook): what
    fell due, done on time or late, overdue, extensions, rejected completions — each shortfall
    with the events that prove it."""
    moment, day = _moment(as_of), _day(on)
    try:
        Period.parse(period)
    except DomainError as exc:
        fail(str(exc), EXIT_USAGE)
    with open_ledger(db) as ledger:
        result = _models(ledger, catch).accountability(
            period, agency, as_of=moment, as_of_position=as_of_position, effective_on=day)
    if as_json:
        print_json(result)
        return
    print_accountability(result, details=details or agency is not None)


def print_accountability(result: dict[str, Any], details: bool = False) -> None:
    p = result["period"]
    console.print(f"[bold]Trách nhiệm người đứng đầu — {p['label']}[/] "
                  f"({vn(p['start'])}–{vn(p['end'])}), đánh giá ngày "
                  f"{vn(result['effective_on'])}, {_basis(result)}")
    rows = result["heads"] + result["without_head"]
    if rows:
        table = Table()
        for column in ("Người đứng đầu", "Cơ quan", "Nhiệm kỳ", "Đến hạn", "Đúng hạn",
                       "Trễ hạn", "Quá hạn", "Quá hạn cuối kỳ", "Gia hạn xin/được",
                       "Bị trả lại", "Đúng hạn %"):
            table.add_column(column, overflow="fold")
        for r in rows:
            tenure = r["tenure"]
            ratio = r["on_time_ratio"]
            ratio_text = "" if ratio is None else f"{ratio:.0%}"
            if r["meets_threshold"] is False:
                ratio_text = f"[red]{ratio_text}[/]"
            table.add_row(
                r["person"] or "[dim](chưa ghi nhận)[/]", r["agency"],
                f"{vn(tenure['from'])}–{vn(tenure['to'])}" if tenure else "",
                str(r["fallen_due"]), str(r["done_on_time"]), str(r["done_late"]),
                str(r["overdue"]), str(r["overdue_at_period_end"]),
                f"{r['extensions']['requested']}/{r['extensions']['granted']}",
                str(r["completions_rejected"]), ratio_text)
        console.print(table)
    if result["groups"]:
        console.print("Nhiệm vụ giao cho nhóm cơ quan (không có một người đứng đầu): "
                      + "; ".join(f"{g['agency']}: {g['fallen_due']} đến hạn, "
                                  f"{g['overdue']} quá hạn" for g in result["groups"]))
    if details:
        for r in result["heads"] + result["without_head"] + result["groups"]:
            if not r["shortfalls"]:
                continue
            who = r["person"] or r["agency"]
            console.print(f"[bold]{who}[/] ({r['agency']}): {r['advice']}")
            for s in r["shortfalls"]:
                when = (f"hạn {vn(s['due'])}" + (f", xong {vn(s['completed_on'])}"
                                                 if s["completed_on"] else ""))
                evidence = ", ".join(f"#{e}" for e in s["evidence"])
                console.print(f"  - {KIND_VI[s['kind']]}: {s['reference']} kỳ {s['occurrence']}"
                              f" ({when}); chứng cứ: {evidence}")
    rulebook = result["rulebook"]
    console.print(f"[dim]Bộ quy tắc {rulebook['version']}"
                  f"{' (tạm thời)' if rulebook['provisional'] else ''}: {rulebook['note']}[/]")


# -- history ---------------------------------------------------------------------------------


@app.command("history")
def history(
    entity_type: str = typer.Argument(..., help="task | directive | agency"),
    entity: str = typer.Argument(..., help="Id, or 768/QĐ-UBND#3.2, or 768/QĐ-UBND, or a code."),
    as_of: str | None = AS_OF,
    as_of_position: int | None = AS_OF_POSITION,
    states: bool = typer.Option(False, "--states", help="Print the full state after each event."),
    catch: bool = CATCH_UP,
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Every event of a task, directive or agency: who, when, from which document, and what it
    changed (the state before and after)."""
    if entity_type.lower() not in ("task", "directive", "agency"):
        fail(f"history is kept for task, directive and agency, not {entity_type!r}", EXIT_USAGE)
    with open_ledger(db) as ledger:
        result = _models(ledger, catch).history(entity_type, entity, as_of=_moment(as_of),
                                                as_of_position=as_of_position)
    if as_json:
        print_json(result)
        return
    console.print(f"[bold]Lịch sử {entity_type} {entity}[/] ({result['entity_id']}), "
                  f"{_basis(result)}")
    table = Table(show_lines=True)
    for column in ("#", "Ghi nhận", "Sự kiện", "Người thực hiện", "Văn bản", "Thay đổi"):
        table.add_column(column, overflow="fold")
    for event in result["events"]:
        actor = event["actor"]
        who = actor["principal"] or ""
        if actor["agency"]:
            who += f" ({actor['agency']})"
        source = event["source_document"]
        document = ""
        if source:
            document = source["number"] + (f" ngày {vn(source['issued_on'])}"
                                           if source.get("issued_on") else "")
        table.add_row(str(event["position"]), vn(event["recorded_at"]), event["type"], who,
                      document, _changes_text(event["changes"], event["version"] == 1))
        if states:
            table.add_row("", "", "", "", "", f"[dim]{event['state_after']}[/]")
    console.print(table)


def _changes_text(changes: list[dict[str, Any]], created: bool, limit: int = 8) -> str:
    if created:
        return f"tạo mới ({len(changes)} trường)"
    # A container that only gains or loses its first or last item is shown by its items.
    changes = [c for c in changes if not (
        ("after" not in c and c.get("before") in ([], {}))
        or ("before" not in c and c.get("after") in ([], {})))]
    # Many fields appearing under one parent (a new occurrence, extension, progress report)
    # are one line.
    added: dict[str, int] = {}
    for c in changes:
        if "before" not in c:
            parent = "/".join(c["path"].split("/")[:3])
            added[parent] = added.get(parent, 0) + 1
    grouped = {p for p, n in added.items() if n > 3}
    lines = []
    for parent in sorted(grouped):
        fields = [f"{c['path'][len(parent) + 1:]}={_short(c['after'])}" for c in changes
                  if "before" not in c and c["path"].startswith(parent + "/")
                  and c["after"] not in (None, [], {}, False, 0)]
        text = ", ".join(fields)
        lines.append(f"{parent.lstrip('/')}: + {text if len(text) <= 90 else text[:89] + '…'}")
    for change in changes:
        if "before" not in change and "/".join(change["path"].split("/")[:3]) in grouped:
            continue
        before = change.get("before", "∅")
        after = change.get("after", "∅")
        lines.append(f"{change['path'].lstrip('/')}: {_short(before)} → {_short(after)}")
    if len(lines) > limit:
        lines = [*lines[:limit], f"… {len(lines) - limit} thay đổi nữa"]
    return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-":
        try:
            return vn(value)
        except ValueError:
            pass
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"
