"""Importing the 768 plan annex and refusing bad input, on SQLite and PostgreSQL."""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import replace
from datetime import date

import pytest

from domain.application import read_journal
from domain.deadlines import DeadlineKind
from domain.errors import (
    DuplicateDirective,
    InvalidDocumentNumber,
    TextNotNormalised,
    UnknownAgency,
    UnparseableDeadline,
    ValidationError,
)
from domain.ids import task_id
from domain.plan_annex import PlanAnnexError, parse_plan_annex
from domain.specs import TaskSpec
from tests.behaviour.helpers import OPERATOR, import_plan, plan_text, stored_count


def test_the_768_annex_imports_45_tasks_with_normalised_deadlines(ledger):
    annex, receipt = import_plan(ledger)
    assert len(annex.spec.tasks) == 45
    directive = ledger.find_directive("768/QĐ-UBND")
    assert directive.issued_on == date(2021, 8, 26)
    assert len(directive.task_ordinals) == 45
    kinds = Counter()
    phrases = set()
    for ordinal in directive.task_ordinals:
        task = ledger.task(task_id(directive.id, ordinal))
        kinds[task.deadline.kind] += 1
        phrases.add(task.deadline.text)
    assert len(phrases) == 16
    assert kinds == {
        DeadlineKind.RECURRING: 24, DeadlineKind.PERIOD_END: 12, DeadlineKind.STANDING: 6,
        DeadlineKind.CONDITIONAL: 3,
    }
    journal = read_journal(ledger, 0, 1000)
    assert [e.position for e in journal] == list(receipt.positions)
    assert sum(e.event_type == "Task.Assigned" for e in journal) == 45
    assert sum(e.event_type == "Directive.Issued" for e in journal) == 1


def test_a_second_import_is_refused_and_stores_nothing(ledger):
    import_plan(ledger)
    before = stored_count(ledger)
    with pytest.raises(DuplicateDirective, match="already in the ledger"):
        import_plan(ledger)
    assert stored_count(ledger) == before


def test_row_problems_name_row_and_column_and_store_nothing(ledger):
    text = plan_text().replace("| Sở Tài chính | Các sở: Tư pháp",
                               "| Sở Tàì chinh | Các sở: Tư pháp")
    text = text.replace("| Quý IV năm 2021 |", "| Quý V năm 2021 |", 1)
    with pytest.raises(PlanAnnexError) as caught:
        parse_plan_annex(text, source="768.txt")
    problems = caught.value.problems
    assert any("column 'Cơ quan chủ trì': unknown agency 'sở tàì chinh'" in p for p in problems)
    assert any("column 'Thời gian hoàn thành'" in p and "Quý V năm 2021" in p for p in problems)
    assert all(p.startswith("row ") for p in problems)
    assert stored_count(ledger) == 0


def test_damaged_table_missing_and_merged_cells(ledger):
    lines = plan_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("3 | Xây dựng Đề án"))
    lines[row] = lines[row].replace(" | Quyết định phê duyệt Đề án của UBND tỉnh", "")
    with pytest.raises(PlanAnnexError, match=rf"row {row + 1}: 5 columns instead of 6"):
        parse_plan_annex("\n".join(lines), source="768.txt")


def test_non_nfc_file_is_refused_unless_normalised(ledger):
    decomposed = unicodedata.normalize("NFD", plan_text())
    with pytest.raises(PlanAnnexError, match="NFC"):
        parse_plan_annex(decomposed, source="768.txt")
    annex = parse_plan_annex(decomposed, source="768.txt", normalise=True)
    assert len(annex.spec.tasks) == 45


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"number": "768QĐ-UBND"}, InvalidDocumentNumber, "has no '/'"),
        ({"title": "   "}, ValidationError, "title: must not be empty"),
        ({"title": unicodedata.normalize("NFD", "Kế hoạch")}, TextNotNormalised, "NFC"),
        ({"issuer": "QNG-KHONGCO"}, UnknownAgency, "QNG-KHONGCO"),
        ({"tasks": ()}, ValidationError, "at least one task"),
        ({"issued_on": date(2099, 1, 1)}, ValidationError, "in the future"),
    ],
)
def test_bad_directive_input_is_refused_and_stores_nothing(ledger, change, error, message):
    annex = parse_plan_annex(plan_text(), source="768.txt")
    spec = replace(annex.spec, **change)
    with pytest.raises(error, match=message):
        ledger.issue_directive(OPERATOR, spec, register_agencies=annex.reference.agencies)
    assert stored_count(ledger) == 0


@pytest.mark.parametrize(
    ("task_change", "error", "message"),
    [
        ({"deadline": "sớm nhất có thể"}, UnparseableDeadline, "task 1.1: cannot read"),
        ({"content": ""}, ValidationError, "task 1.1: content: must not be empty"),
        ({"lead": "QNG-XYZ"}, UnknownAgency, "task 1.1: unknown agency 'QNG-XYZ'"),
        ({"coordinating": ("QNG-SNV",)}, ValidationError, "cannot also coordinate"),
    ],
)
def test_bad_task_input_is_refused_and_stores_nothing(ledger, task_change, error, message):
    annex = parse_plan_annex(plan_text(), source="768.txt")
    first = replace(annex.spec.tasks[0], **task_change)
    spec = replace(annex.spec, tasks=(first, *annex.spec.tasks[1:]))
    with pytest.raises(error, match=message):
        ledger.issue_directive(OPERATOR, spec, register_agencies=annex.reference.agencies)
    assert stored_count(ledger) == 0


def test_duplicate_ordinals_are_refused(ledger):
    annex = parse_plan_annex(plan_text(), source="768.txt")
    twin = TaskSpec(ordinal="1.1", content="x", lead="QNG-SNV", deadline="Năm 2022")
    spec = replace(annex.spec, tasks=(*annex.spec.tasks, twin))
    with pytest.raises(ValidationError, match=r"ordinals repeat: 1\.1"):
        ledger.issue_directive(OPERATOR, spec, register_agencies=annex.reference.agencies)
    assert stored_count(ledger) == 0
