"""``ledger demo``: the first thing a newcomer runs.

Imports the sample plan (768/QĐ-UBND, Quảng Ngãi, 26/8/2021, 45 tasks) and one sample
directive (1864/UBND-TTHC) into the configured store (default ./ledger.db, SQLite) unless
they are already there. In a fresh store it also records, once, a small sample history as
it would have been recorded at the time (the ledger clock is set to each day in turn): heads
appointed (fictional names), tasks completed on time and late, extensions asked before and
after expiry, a completion report sent back, a head replaced in mid-2022. Then it catches the
read models up and shows what each agency owes today and the heads' accountability for 2022.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from importlib import resources
from typing import Any

import typer
import yaml
from rich.table import Table

from cli.common import console, open_ledger, operator_context
from cli.main import DB_OPTION, app
from cli.projections import catch_up, print_counts, vn
from domain.actors import Actor, CommandContext, Role, SourceDocument
from domain.clock import LOCAL_TZ, format_date_vn, local_date, utc_now
from domain.directive_file import parse_directive_mapping
from domain.ids import task_id
from domain.plan_annex import parse_plan_annex
from projections.queries import ReadModels

PLAN = "quang-ngai-768-QD-UBND-2021-ke-hoach-cchc.txt"
DIRECTIVE = "quang-ngai-1864-UBND-TTHC-2024.yaml"
STORY_START = "2021-08-26 16:00"


def _sample(name: str) -> str:
    return resources.files("cli.samples").joinpath(name).read_text("utf-8")


class StoryClock:
    """The ledger clock for the sample history: a given local moment, else the real time."""

    def __init__(self) -> None:
        self.moment: datetime | None = None

    def set(self, local: str | None) -> None:
        self.moment = None if local is None else datetime.fromisoformat(local).replace(
            tzinfo=LOCAL_TZ).astimezone(UTC)

    def __call__(self) -> datetime:
        return self.moment or utc_now()


def _actor(code: str, document: str | None = None, on: str | None = None) -> CommandContext:
    role = Role.OFFICE if code == "QNG-VPUBND" else Role.AGENCY
    source = SourceDocument(document, date.fromisoformat(on) if on else None) if document else None
    return CommandContext(Actor(f"demo:{code}", role, code), source_document=source)


OFFICE = "QNG-VPUBND"
HEADS = (  # (agency, person, position, from) — fictional people
    ("QNG-SNV", "Nguyễn Văn A", "Giám đốc Sở Nội vụ", "2020-01-01"),
    ("QNG-STC", "Lê Văn C", "Giám đốc Sở Tài chính", "2019-03-01"),
    ("QNG-STTTT", "Phạm Thị D", "Giám đốc Sở Thông tin và Truyền thông", "2020-06-01"),
    ("QNG-STP", "Hoàng Văn E", "Giám đốc Sở Tư pháp", "2021-01-01"),
)


def record_sample_history(ledger: Any, clock: StoryClock) -> int:
    """The 768 plan's first years as they might have been recorded. Returns events stored."""
    plan = ledger.find_directive("768/QĐ-UBND")
    task = {o: task_id(plan.id, o) for o in plan.task_ordinals}
    stored = 0

    def at(moment: str, command, *args, **kwargs) -> None:
        nonlocal stored
        clock.set(moment)
        stored += len(command(*args, **kwargs).positions)

    def complete(ordinal: str, lead: str, occurrence: str | None, done_on: str,
                 confirm_on: str, document: str) -> None:
        at(f"{done_on} 16:00", ledger.report_completion, _actor(lead, document, done_on),
           task[ordinal], occurrence=occurrence, completed_on=date.fromisoformat(done_on),
           document=document, summary="Đã hoàn thành, gửi kèm văn bản")
        at(f"{confirm_on} 09:00", ledger.confirm_completion, _actor(OFFICE), task[ordinal],
           occurrence=occurrence, note="Đã kiểm tra sản phẩm")

    def extend(ordinal: str, lead: str, occurrence: str | None, asked: str, until: str,
               granted: str, reason: str) -> None:
        at(f"{asked} 10:00", ledger.request_extension, _actor(lead), task[ordinal],
           occurrence=occurrence, requested_due=date.fromisoformat(until), reason=reason)
        at(f"{granted} 09:00", ledger.grant_extension, _actor(OFFICE), task[ordinal],
           occurrence=occurrence, note="Đồng ý gia hạn")

    for code, person, position, from_on in HEADS:
        at("2021-08-27 08:00", ledger.appoint_head,
           operator_context("Quyết định bổ nhiệm (mẫu)"), code, person, position,
           date.fromisoformat(from_on))
    # Quý IV/2021: Sở Tài chính on time; Sở TT&TT asks for more time before the deadline.
    complete("6.8", "QNG-STC", None, "2021-12-20", "2021-12-22", "2150/STC-QLGCS")
    extend("1.4", "QNG-STTTT", None, "2021-12-15", "2022-03-31", "2021-12-17",
           "Chờ hướng dẫn của Bộ Nội vụ về nội dung tuyên truyền")
    complete("1.4", "QNG-STTTT", None, "2022-03-25", "2022-03-28", "45/KH-STTTT")
    # Sở Nội vụ's 2021 plan comes late; Sở Tài chính asks only after its deadline passed.
    complete("1.1", "QNG-SNV", "2021", "2022-01-10", "2022-01-12", "05/KH-UBND")
    extend("6.9", "QNG-STC", None, "2022-01-05", "2022-02-28", "2022-01-07",
           "Chậm tổng hợp ý kiến các sở")
    complete("6.9", "QNG-STC", None, "2022-02-20", "2022-02-23", "512/STC-QLNS")
    complete("1.3", "QNG-SNV", None, "2022-06-28", "2022-06-29", "1456/QĐ-UBND")
    # The head of Sở Nội vụ changes on 1/7/2022.
    at("2022-06-30 17:00", ledger.record_head_left, operator_context("Quyết định nghỉ hưu (mẫu)"),
       "QNG-SNV", "Nguyễn Văn A", date(2022, 6, 30))
    at("2022-07-01 08:00", ledger.appoint_head, operator_context("Quyết định bổ nhiệm (mẫu)"),
       "QNG-SNV", "Trần Thị B", "Giám đốc Sở Nội vụ", date(2022, 7, 1))
    # A report sent back, then accepted; a 2022 plan asked to be extended after its deadline.
    at("2022-12-05 16:00", ledger.report_completion, _actor("QNG-SNV"), task["5.3"],
       occurrence="2022", completed_on=date(2022, 12, 5), summary="Báo cáo kết quả")
    at("2022-12-08 09:00", ledger.reject_completion, _actor(OFFICE), task["5.3"],
       occurrence="2022", reason="Thiếu số liệu của cấp huyện")
    complete("5.3", "QNG-SNV", "2022", "2022-12-10", "2022-12-12", "3120/BC-SNV")
    extend("1.1", "QNG-SNV", "2022", "2022-12-28", "2023-01-31", "2022-12-29",
           "Chờ Kế hoạch của Bộ Nội vụ")
    complete("1.1", "QNG-SNV", "2022", "2023-01-20", "2023-01-21", "12/KH-UBND")
    return stored


def _last_recorded(ledger: Any) -> datetime | None:
    head = ledger.recorder.max_notification_id()
    if not head:
        return None
    (note,) = ledger.recorder.select_notifications(start=head, limit=1)
    return ledger.mapper.to_domain_event(note).timestamp


@app.command("demo")
def demo(db: str | None = DB_OPTION) -> None:
    """Import the samples (once), record a sample history in a fresh store, and show today's
    obligations and the heads' accountability for 2022 from the read models."""
    clock = StoryClock()
    with open_ledger(db) as ledger:
        ledger.clock = clock
        console.print(f"Store: {ledger.store.redacted}")
        annex = parse_plan_annex(_sample(PLAN), source=PLAN)
        parsed = parse_directive_mapping(yaml.safe_load(_sample(DIRECTIVE)), source=DIRECTIVE)
        fresh = _last_recorded(ledger) is None
        for spec, agencies, moment in (
            (annex.spec, annex.reference.agencies, STORY_START),
            (parsed.spec, parsed.reference.agencies, "2024-04-10 16:00"),
        ):
            if ledger.find_directives(spec.number):
                console.print(f"{spec.number} is already in the ledger.")
                continue
            clock.set(moment if fresh else None)  # a fresh store gets the story's dates
            receipt = ledger.issue_directive(
                operator_context(spec.number, spec.issued_on.isoformat()), spec,
                register_agencies=agencies,
            )
            console.print(f"Imported {spec.number} ({format_date_vn(spec.issued_on)}): "
                          f"{len(spec.tasks)} tasks, {len(receipt.positions)} events.")
            if spec is annex.spec and fresh:
                stored = record_sample_history(ledger, clock)
                console.print(f"Recorded a sample history of the plan, 2021–2023: {stored} "
                              "events, each with the ledger clock set to the day it happened "
                              "(fictional heads: Nguyễn Văn A, Trần Thị B, …).")
        if not fresh and not ledger.agency("QNG-SNV").heads:
            console.print("[dim]The sample history is recorded only in a fresh store "
                          "(remove ledger.db to see it).[/]")
        clock.set(None)
        today = local_date(utc_now())
        catch_up(ledger, show_from=2000)
        models = ReadModels(ledger)
        counts = models.obligation_counts(effective_on=today)
        record = models.accountability("2022", effective_on=today)
    print_counts(counts)
    _print_accountability(record)
    console.print(
        "Next: [bold]ledger obligations --on 31/12/2022[/] (this table on another day), "
        "[bold]ledger obligations --agency QNG-SNV[/], "
        "[bold]ledger accountability --period 2022 --agency QNG-SNV[/], "
        "[bold]ledger history task '768/QĐ-UBND#1.1'[/], "
        "[bold]ledger obligations --agency QNG-STC --as-of 31/12/2021[/], "
        "[bold]ledger projections status[/]"
    )


def _print_accountability(result: dict[str, Any]) -> None:
    table = Table(title=f"Trách nhiệm người đứng đầu — {result['period']['label']} "
                        f"(quy tắc {result['rulebook']['version']}, tạm thời)")
    for column in ("Người đứng đầu", "Cơ quan", "Nhiệm kỳ", "Đến hạn", "Đúng hạn", "Trễ hạn",
                   "Quá hạn", "Gia hạn xin/được", "Bị trả lại", "Đúng hạn %"):
        table.add_column(column)
    for r in result["heads"]:
        tenure = r["tenure"]
        ratio = r["on_time_ratio"]
        table.add_row(r["person"], r["agency"], f"{vn(tenure['from'])}–{vn(tenure['to'])}",
                      str(r["fallen_due"]), str(r["done_on_time"]), str(r["done_late"]),
                      str(r["overdue"]),
                      f"{r['extensions']['requested']}/{r['extensions']['granted']}",
                      str(r["completions_rejected"]),
                      "" if ratio is None else f"{ratio:.0%}")
    console.print(table)
    others = [f"{r['agency']} ({r['fallen_due']})" for r in result["without_head"]]
    if others:
        console.print(f"Chưa ghi nhận người đứng đầu (số nhiệm vụ đến hạn): {', '.join(others)}")
    if result["groups"]:
        console.print("Giao cho nhóm cơ quan, không quy cho một người: " + ", ".join(
            f"{g['agency']} ({g['fallen_due']})" for g in result["groups"]))
    for r in result["heads"]:
        if r["agency"] != "QNG-SNV":
            continue
        for s in r["shortfalls"]:
            evidence = ", ".join(f"#{e}" for e in s["evidence"])
            if s["kind"] == "done_late":
                what = f"trễ hạn (hạn {vn(s['due'])}, xong {vn(s['completed_on'])})"
            elif s["kind"] == "completion_rejected":
                what = f"báo cáo hoàn thành bị trả lại ngày {vn(s['attributed_on'])}"
            else:
                continue
            console.print(f"  {r['person']}: {s['reference']} kỳ {s['occurrence']} — {what}; "
                          f"chứng cứ {evidence}")
    console.print(f"[dim]{result['rulebook']['note']}[/]")


if __name__ == "__main__":  # pragma: no cover
    typer.run(demo)
