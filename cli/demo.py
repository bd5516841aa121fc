"""``ledger demo``: the first thing a newcomer runs.

Imports the sample plan (768/QĐ-UBND, Quảng Ngãi, 26/8/2021, 45 tasks) and one sample
directive (1864/UBND-TTHC) into the configured store (default ./ledger.db, SQLite) unless
they are already there, then shows what each agency owes today.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from importlib import resources

import typer
import yaml
from rich.table import Table

from cli.common import console, open_ledger, operator_context
from cli.main import DB_OPTION, _task_rows, app
from domain.clock import format_date_vn, local_date
from domain.directive_file import parse_directive_mapping
from domain.plan_annex import parse_plan_annex
from domain.rules import TaskStatus

PLAN = "quang-ngai-768-QD-UBND-2021-ke-hoach-cchc.txt"
DIRECTIVE = "quang-ngai-1864-UBND-TTHC-2024.yaml"


def _sample(name: str) -> str:
    return resources.files("cli.samples").joinpath(name).read_text("utf-8")


@app.command("demo")
def demo(db: str | None = DB_OPTION) -> None:
    """Import the sample plan and directive (once) and show today's obligations."""
    with open_ledger(db) as ledger:
        console.print(f"Store: {ledger.store.redacted}")
        annex = parse_plan_annex(_sample(PLAN), source=PLAN)
        parsed = parse_directive_mapping(yaml.safe_load(_sample(DIRECTIVE)), source=DIRECTIVE)
        for spec, agencies in ((annex.spec, annex.reference.agencies),
                               (parsed.spec, parsed.reference.agencies)):
            if ledger.find_directives(spec.number):
                console.print(f"{spec.number} is already in the ledger.")
                continue
            receipt = ledger.issue_directive(
                operator_context(spec.number, spec.issued_on.isoformat()), spec,
                register_agencies=agencies,
            )
            console.print(f"Imported {spec.number} ({format_date_vn(spec.issued_on)}): "
                          f"{len(spec.tasks)} tasks, {len(receipt.positions)} events.")
        today = local_date(ledger.clock())
        rows = []
        for spec in (annex.spec, parsed.spec):
            rows += _task_rows(ledger, ledger.find_directive(spec.number), today)

    by_agency: dict[str, Counter] = defaultdict(Counter)
    next_due: dict[str, object] = {}
    for row in rows:
        by_agency[row["lead"]][row["status"]] += 1
        if row["status"] is TaskStatus.IN_PROGRESS and row["due_on"] is not None:
            current = next_due.get(row["lead"])
            if current is None or row["due_on"] < current:
                next_due[row["lead"]] = row["due_on"]
    table = Table(title=f"Nghĩa vụ theo cơ quan chủ trì, ngày {format_date_vn(today)}")
    for column in ("Cơ quan chủ trì", "Quá hạn", "Đang thực hiện", "Chưa đến hạn",
                   "Không thời hạn", "Hạn gần nhất"):
        table.add_column(column, justify="right" if column != "Cơ quan chủ trì" else "left")
    for lead in sorted(by_agency, key=lambda c: -by_agency[c][TaskStatus.OVERDUE]):
        counts = by_agency[lead]
        table.add_row(lead, f"[bold red]{counts[TaskStatus.OVERDUE]}[/]",
                      str(counts[TaskStatus.IN_PROGRESS]), str(counts[TaskStatus.NOT_DUE]),
                      str(counts[TaskStatus.NO_DEADLINE]), format_date_vn(next_due.get(lead)))
    console.print(table)
    console.print(
        "Next: [bold]ledger directive show 768/QĐ-UBND[/], "
        "[bold]ledger task show '768/QĐ-UBND#6.8'[/], [bold]ledger events[/]"
    )


if __name__ == "__main__":  # pragma: no cover
    typer.run(demo)
