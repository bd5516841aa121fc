"""``ledger``: the operator's command line (typer + rich).

Every command prints dates as dd/mm/yyyy for people and ISO 8601 with ``--json``; every
failure is one line on stderr with a non-zero exit code (1 refused, 2 usage, 3 store).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer
import yaml
from rich.table import Table

from cli.common import (
    EXIT_USAGE,
    console,
    date_option,
    fail,
    open_ledger,
    operator_context,
    print_json,
    run_guarded,
)
from domain.application import read_journal, registered_agency_codes
from domain.clock import format_date_vn, format_datetime_vn, local_date
from domain.directive_file import parse_directive_mapping
from domain.plan_annex import parse_plan_annex
from domain.rules import TaskStatus
from service.collector import rarer_full_collections

app = typer.Typer(
    name="ledger",
    help="chidao-ledger: sổ theo dõi văn bản chỉ đạo, điều hành và nhiệm vụ được giao.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)
import_app = typer.Typer(help="Import directives from documents.", no_args_is_help=True)
directive_app = typer.Typer(help="Directives (văn bản chỉ đạo).", no_args_is_help=True)
task_app = typer.Typer(help="Tasks (nhiệm vụ).", no_args_is_help=True)
agency_app = typer.Typer(help="Agencies (cơ quan, đơn vị) and their heads.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(directive_app, name="directive")
app.add_typer(task_app, name="task")
app.add_typer(agency_app, name="agency")

DB_OPTION = typer.Option(None, "--db", envvar="LEDGER_DATABASE_URL",
                         help="Store URL (default sqlite:///ledger.db).")
JSON_OPTION = typer.Option(False, "--json", help="Machine-readable output.")
STATUS_STYLE = {
    TaskStatus.OVERDUE: "bold red", TaskStatus.DONE_LATE: "yellow",
    TaskStatus.DONE_ON_TIME: "green", TaskStatus.IN_PROGRESS: "cyan",
}


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", EXIT_USAGE)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # "Unicode text" as Excel/Word save it
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            fail(f"{path}: broken UTF-16 text (byte {exc.start}); save it as UTF-8", EXIT_USAGE)
    if b"\x00" in raw:
        where = _line_column(raw, raw.index(b"\x00"))
        fail(f"{path}: a binary file, not a text table (NUL byte at {where}); export the "
             "table as UTF-8 text", EXIT_USAGE)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        fail(f"{path}: not UTF-8 text at {_line_column(raw, exc.start)} (byte {exc.start}); "
             "save it as UTF-8", EXIT_USAGE)


def _line_column(raw: bytes, offset: int) -> str:
    line = raw.count(b"\n", 0, offset) + 1
    start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[start:offset].decode("utf-8", errors="replace")) + 1  # in characters
    return f"line {line}, column {column}"


# -- import --------------------------------------------------------------------------------------


@import_app.command("plan")
def import_plan(
    file: Path = typer.Argument(..., help="A plan annex (table: TT | Nhiệm vụ | ... )."),
    nfc: bool = typer.Option(False, "--nfc", help="Normalise the file to Unicode NFC first."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the file, store nothing."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Record a plan (e.g. 768/QĐ-UBND) with every task of its annex, in one transaction."""
    text = _read_text(file)
    annex = parse_plan_annex(text, source=file.name, normalise=nfc)
    spec = annex.spec
    if dry_run:
        console.print(f"{file.name}: {spec.number} ({format_date_vn(spec.issued_on)}), "
                      f"{len(spec.tasks)} tasks read; nothing stored (--dry-run)")
        return
    with open_ledger(db) as ledger:
        receipt = ledger.issue_directive(
            operator_context(spec.number, spec.issued_on.isoformat()), spec,
            register_agencies=annex.reference.agencies,
        )
    if as_json:
        print_json({"directive_id": receipt.entity_id, "number": spec.number,
                    "tasks": len(spec.tasks), "events": len(receipt.positions),
                    "position": receipt.position})
        return
    console.print(
        f"Imported {spec.number} ({format_date_vn(spec.issued_on)}): {len(spec.tasks)} tasks, "
        f"{len(receipt.positions)} events stored (positions {receipt.positions[0]}-"
        f"{receipt.positions[-1]})."
    )


@import_app.command("directive")
def import_directive(
    file: Path = typer.Argument(..., help="One directive with tasks, as .json, .yaml or .yml."),
    nfc: bool = typer.Option(False, "--nfc", help="Normalise the file to Unicode NFC first."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Record one directive with its tasks (see cli/samples/*.yaml for the format)."""
    import unicodedata

    text = _read_text(file)
    if nfc:
        text = unicodedata.normalize("NFC", text)
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        fail(f"{file.name}: not valid {file.suffix.lstrip('.').upper() or 'YAML'}: "
             f"{str(exc).splitlines()[0]}", EXIT_USAGE)
    parsed = parse_directive_mapping(data, source=file.name)
    spec = parsed.spec
    with open_ledger(db) as ledger:
        receipt = ledger.issue_directive(
            operator_context(spec.number, spec.issued_on.isoformat()), spec,
            register_agencies=parsed.reference.agencies if parsed.reference else (),
        )
    if as_json:
        print_json({"directive_id": receipt.entity_id, "number": spec.number,
                    "tasks": len(spec.tasks), "position": receipt.position})
        return
    console.print(f"Imported {spec.number} ({format_date_vn(spec.issued_on)}): "
                  f"{len(spec.tasks)} tasks.")


# -- directives and tasks ------------------------------------------------------------------------


def _task_rows(ledger, directive, today: date) -> list[dict]:
    from domain.ids import task_id

    rows = []
    for ordinal in directive.task_ordinals:
        task = ledger.task(task_id(directive.id, ordinal))
        for occ, status in task.obligations(today):
            rows.append({
                "task_id": task.id, "ordinal": task.ordinal, "lead": task.lead,
                "content": task.content, "deadline_text": task.deadline.text,
                "deadline_kind": task.deadline.kind, "occurrence": occ.key if occ else None,
                "due_on": occ.due_on if occ else None,
                "original_due": occ.original_due if occ else None, "status": status,
            })
    return rows


@directive_app.command("show")
def directive_show(
    number: str = typer.Argument(..., help="Document number, e.g. 768/QĐ-UBND."),
    issuer: str | None = typer.Option(None, help="Issuer code, if several share the number."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """A directive and the status of each of its tasks today."""
    with open_ledger(db) as ledger:
        directive = ledger.find_directive(number, issuer)
        today = local_date(ledger.clock())
        rows = _task_rows(ledger, directive, today)
    info = {
        "id": directive.id, "number": directive.number, "type": directive.doc_type,
        "issuer": directive.issuer, "assigning_office": directive.assigning_office,
        "issued_on": directive.issued_on, "title": directive.title,
        "signing_capacity": directive.signing_capacity, "references": directive.references,
        "revoked_on": directive.revoked_on, "version": directive.version,
        "tasks": len(directive.task_ordinals), "obligations": rows,
    }
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]{directive.doc_type} {directive.number}[/] "
                  f"ngày {format_date_vn(directive.issued_on)} — {directive.title}")
    console.print(f"Cơ quan ban hành: {directive.issuer}; theo dõi: "
                  f"{directive.assigning_office}; {len(directive.task_ordinals)} nhiệm vụ"
                  + (f"; [red]thu hồi {format_date_vn(directive.revoked_on)}[/]"
                     if directive.revoked_on else ""))
    table = Table(title=f"Tình trạng ngày {format_date_vn(today)}", show_lines=False)
    for column in ("TT", "Chủ trì", "Thời hạn", "Kỳ", "Hạn", "Tình trạng"):
        table.add_column(column)
    for row in rows:
        status = row["status"]
        table.add_row(row["ordinal"], row["lead"], row["deadline_text"], row["occurrence"] or "",
                      format_date_vn(row["due_on"]),
                      f"[{STATUS_STYLE.get(status, '')}]{status.label_vi}[/]")
    console.print(table)


@task_app.command("show")
def task_show(
    reference: str = typer.Argument(
        ..., help="Task id, or the directive's number and the task's ordinal joined by # "
        "(768/QĐ-UBND#3.2)."
    ),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One task: content, agencies, deadline as written and normalised, occurrences."""
    with open_ledger(db) as ledger:
        task = ledger.find_task(reference)
        today = local_date(ledger.clock())
        obligations = task.obligations(today)
    info = {
        "id": task.id, "directive": task.directive_number, "ordinal": task.ordinal,
        "section": task.section, "content": task.content, "deliverable": task.deliverable,
        "lead": task.lead, "coordinating": task.coordinating, "lead_text": task.lead_text,
        "coordinating_text": task.coordinating_text, "assigned_on": task.assigned_on,
        "deadline": {"text": task.deadline.text, "kind": task.deadline.kind,
                     "due_on": task.deadline.due_on, "frequency": task.deadline.frequency,
                     "note": task.deadline.note},
        "cancelled_on": task.cancelled_on, "version": task.version,
        "obligations": [
            {"occurrence": occ.key if occ else None, "status": status,
             "due_on": occ.due_on if occ else None,
             "original_due": occ.original_due if occ else None,
             "extended": occ.extended if occ else False,
             "completed_on": occ.completed_on if occ else None}
            for occ, status in obligations
        ],
        "progress": task.progress,
    }
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]Nhiệm vụ {task.ordinal}[/] của {task.directive_number} "
                  f"(giao ngày {format_date_vn(task.assigned_on)})")
    console.print(task.content)
    console.print(f"Chủ trì: {task.lead}" + (f" ({task.lead_text})" if task.lead_text else ""))
    if task.coordinating:
        console.print(f"Phối hợp: {', '.join(task.coordinating)}")
    console.print(f"Thời hạn: {task.deadline.text} → {task.deadline.kind.value}")
    for occ, status in obligations:
        due = format_date_vn(occ.due_on) if occ else "—"
        extra = ""
        if occ and occ.extended:
            extra = f" (gia hạn; hạn gốc {format_date_vn(occ.original_due)})"
        key = occ.key if occ else "—"
        console.print(f"  kỳ {key}: hạn {due}{extra}: {status.label_vi}")


# -- agencies ------------------------------------------------------------------------------------


@agency_app.command("list")
def agency_list(db: str | None = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Registered agencies."""
    with open_ledger(db) as ledger:
        agencies = [ledger.agency(code) for code in registered_agency_codes(ledger)]
    if as_json:
        print_json([{"code": a.code, "name": a.name, "level": a.level, "status": a.status,
                     "parent": a.parent} for a in agencies])
        return
    table = Table()
    for column in ("Mã", "Tên", "Cấp", "Tình trạng"):
        table.add_column(column)
    for a in agencies:
        table.add_row(a.code, a.name, a.level.value, a.status.value)
    console.print(table)


@agency_app.command("appoint-head")
def agency_appoint_head(
    code: str, person: str = typer.Option(..., help="Full name."),
    position: str = typer.Option(..., help="e.g. Giám đốc Sở"),
    from_on: str = typer.Option(..., "--from", help="First day in office (dd/mm/yyyy)."),
    acting: bool = typer.Option(False, help="Cấp phó phụ trách / quyền."),
    db: str | None = DB_OPTION,
) -> None:
    """Record a head (người đứng đầu) taking office."""
    with open_ledger(db) as ledger:
        ledger.appoint_head(operator_context(), code, person, position, date_option(from_on),
                            acting=acting)
    console.print(f"{person} heads {code} from {format_date_vn(date_option(from_on))}.")


@agency_app.command("head-left")
def agency_head_left(
    code: str, person: str = typer.Option(...),
    to_on: str = typer.Option(..., "--to", help="Last day in office (dd/mm/yyyy)."),
    db: str | None = DB_OPTION,
) -> None:
    """Record a head leaving office."""
    with open_ledger(db) as ledger:
        ledger.record_head_left(operator_context(), code, person, date_option(to_on))
    console.print(f"{person} left {code} on {format_date_vn(date_option(to_on))}.")


# -- journal -------------------------------------------------------------------------------------


@app.command("events")
def events(
    after: int = typer.Option(0, help="Show events after this position."),
    limit: int = typer.Option(200, min=1, max=10_000, help="At most this many events."),
    db: str | None = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """The raw journal: every stored event in global order."""
    with open_ledger(db) as ledger:
        entries = read_journal(ledger, after=after, limit=limit)
    if as_json:
        for entry in entries:
            print(json.dumps(entry.as_json(), ensure_ascii=False))
        return
    table = Table()
    for column in ("#", "Ghi nhận", "Sự kiện", "Đối tượng", "Người thực hiện"):
        table.add_column(column)
    for e in entries:
        label = (e.data.get("code") or e.data.get("number") or
                 (f"{e.data.get('directive_number')}#{e.data['ordinal']}"
                  if "ordinal" in e.data else str(e.entity_id)[:8]))
        table.add_row(str(e.position), format_datetime_vn(e.recorded_at), e.event_type,
                      f"{label} v{e.version}", e.meta.get("actor", ""))
    console.print(table)
    if not entries:
        console.print(f"No events after position {after}.")


def main() -> None:
    import cli.integrity_commands  # noqa: F401  (verify, checkpoint, export, replay, diff)
    from cli import (
        demo,  # noqa: F401  (registers the demo command)
        projections,  # noqa: F401  (registers the read-model commands)
        serve,  # noqa: F401  (registers serve and token)
    )

    with rarer_full_collections():  # see there: replays hold every aggregate of the ledger
        run_guarded(app)


if __name__ == "__main__":
    main()
