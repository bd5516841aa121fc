"""Reading a plan's task annex (Phụ lục: danh mục nhiệm vụ) into a directive with tasks.

The annex is a table with the columns
    TT | Nhiệm vụ | Sản phẩm | Cơ quan chủ trì | Cơ quan phối hợp | Thời gian hoàn thành
where TT restarts at 1 for each section of the plan. A task's ordinal is
"<section>.<TT>" ("3.2" is the second task of the third section).

Agency cells name one or more agencies (or named groups such as "Các Sở, ban, ngành"). The
first agency of the lead cell is the lead (Nghị định 39/2022: one task, one lead); any
further agencies in that cell join the coordinating agencies, and both cells are kept as
written beside the resolved codes.

Every problem is reported with its row and column, all of them at once, and nothing is
stored unless the whole table reads cleanly.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from domain.deadlines import DeadlineContext, parse_deadline
from domain.errors import DomainError, UnknownAgency, ValidationError
from domain.reference import PROVINCES, NameResolver, ReferenceList, load_reference
from domain.rulebook import RULEBOOK, Rulebook
from domain.specs import DirectiveSpec, TaskSpec
from domain.text import control_character, fold

COLUMNS = ("TT", "Nhiệm vụ", "Sản phẩm", "Cơ quan chủ trì", "Cơ quan phối hợp",
           "Thời gian hoàn thành")
# What each header cell must say (folded; any one of the words): a table whose columns are
# in another order ("Cơ quan phối hợp" before "Cơ quan chủ trì") would otherwise be read
# with the lead and coordinating agencies swapped.
HEADER_WORDS = (("tt", "stt"), ("nhiệm vụ", "nội dung"), ("sản phẩm", "kết quả"),
                ("chủ trì",), ("phối hợp",), ("thời gian", "thời hạn"))
_PROVINCE_NAMES = {"quảng ngãi": "quang-ngai", "lạng sơn": "lang-son"}


class PlanAnnexError(ValidationError):
    """The file cannot be imported; ``problems`` lists every row/column at fault."""

    code = "plan-annex-invalid"

    def __init__(self, source: str, problems: list[str]) -> None:
        shown = "; ".join(problems[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{source}: {len(problems)} {noun}: {shown}{more}", field="file")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class PlanAnnex:
    province: str
    reference: ReferenceList
    spec: DirectiveSpec


def _cells(line: str) -> list[str]:
    parts = [c.strip() for c in line.split("|")]
    if parts and parts[-1] == "":
        parts = parts[:-1]
    return parts


def _header(text: str, source: str) -> tuple[str, str, date]:
    m = re.search(
        r"Số:\s*([^|\n]+?)\s*\|\s*([^,|\n]+),\s*ngày\s+(\d{1,2})\s+tháng\s+(\d{1,2})\s+năm\s+(\d{4})",
        text,
    )
    if not m:
        raise PlanAnnexError(
            source,
            ["header: no line 'Số: <number> | <place>, ngày <d> tháng <m> năm <yyyy>' found"],
        )
    number, place, day, month, year = m.groups()
    try:
        issued_on = date(int(year), int(month), int(day))
    except ValueError:
        raise PlanAnnexError(source, [f"header: {day}/{month}/{year} is not a date"]) from None
    return number.strip(), place.strip(), issued_on


def _section_titles(lines: list[str]) -> dict[int, str]:
    """Titles "1. Công tác chỉ đạo, điều hành" of part III (tasks and solutions)."""
    titles: dict[int, str] = {}
    inside = False
    for line in lines:
        if re.match(r"^III\.\s", line):
            inside = True
            continue
        if inside and (re.match(r"^IV\.\s", line) or "Phụ lục" in line):
            break
        m = re.match(r"^(\d{1,2})\.\s+(.+)$", line) if inside else None
        if m:
            titles[int(m.group(1))] = m.group(2).strip()
    return titles


def parse_plan_annex(
    text: str, *, source: str = "plan", normalise: bool = False, rulebook: Rulebook = RULEBOOK
) -> PlanAnnex:
    if normalise:
        text = unicodedata.normalize("NFC", text)
    elif not unicodedata.is_normalized("NFC", text):
        bad = next(i for i, line in enumerate(text.splitlines(), 1)
                   if not unicodedata.is_normalized("NFC", line))
        raise PlanAnnexError(
            source, [f"line {bad}: text is not in Unicode NFC form (re-run with --nfc)"]
        )
    lines = text.splitlines()
    number, place, issued_on = _header(text, source)
    province = _PROVINCE_NAMES.get(fold(place))
    if province is None:
        raise PlanAnnexError(
            source, [f"header: no reference list for {place!r} (known: {', '.join(PROVINCES)})"]
        )
    reference = load_reference(province)
    resolver = NameResolver.from_records(reference.agencies)

    title = next(
        (ln.strip() for ln in lines[lines.index(next(ln for ln in lines if "Số:" in ln)) + 1 :]
         if ln.strip() and ln.upper() == ln and "|" not in ln),
        None,
    )
    period = re.search(r"GIAI ĐOẠN (\d{4})\s*-\s*(\d{4})", title or "")
    capacity = re.search(r"\|\s*((?:TM|KT|TL|TUQ|Q)\.\s*[^|]+?)\s*\|", text)
    references = sorted(set(re.findall(
        r"(?:số|Số)\s+(\d{1,6}/(?:\d{4}/)?[A-ZĐ][A-ZĐa-z0-9-]*)", "\n".join(
            ln for ln in lines if ln.startswith(("Căn cứ", "Theo đề nghị"))
        ),
    )))
    titles = _section_titles(lines)
    plan_last_year = int(period.group(2)) if period else None
    deadline_context = DeadlineContext(issued_on, plan_last_year, rulebook)

    header_index = next(
        (i for i, ln in enumerate(lines) if fold(_cells(ln)[0] if "|" in ln else "") == "tt"),
        None,
    )
    problems: list[str] = []
    if header_index is None:
        raise PlanAnnexError(source, ["no annex table: no header row starting with 'TT |'"])
    header = _cells(lines[header_index])
    if len(header) != len(COLUMNS):
        problems.append(
            f"row {header_index + 1}: the header has {len(header)} columns, expected "
            f"{len(COLUMNS)} ({' | '.join(COLUMNS)})"
        )
        raise PlanAnnexError(source, problems)
    for column, (cell, expected, words) in enumerate(zip(header, COLUMNS, HEADER_WORDS,
                                                         strict=True), 1):
        folded = fold(cell)
        if not (folded in words if column == 1 else any(w in folded for w in words)):
            problems.append(f"row {header_index + 1}, column {column}: the header says "
                            f"{cell!r} where {expected!r} is expected")
    if problems:
        raise PlanAnnexError(source, problems)

    tasks: list[TaskSpec] = []
    section, previous_tt, table_end = 0, None, None
    for row_no in range(header_index + 2, len(lines) + 1):
        line = lines[row_no - 1]
        if "|" not in line:
            if tasks or previous_tt is not None or problems:
                table_end = row_no
                break  # the table ends at the first line that is not a row
            continue
        cells = _cells(line)
        where = f"row {row_no}"
        if len(cells) != len(COLUMNS):
            problems.append(
                f"{where}: {len(cells)} columns instead of {len(COLUMNS)} (merged or missing "
                "cells, or a truncated file?)"
            )
            if cells and re.fullmatch(r"\d{1,3}", cells[0]):
                previous_tt = int(cells[0])  # so the next row is not reported as well
            continue
        odd = [(name, bad) for name, cell in zip(COLUMNS, cells, strict=True)
               if (bad := control_character(cell))]
        if odd:
            problems.extend(f"{where}, column '{name}': a control or invisible formatting "
                            f"character ({bad}); is this a text file?" for name, bad in odd)
            continue
        tt_text, content, deliverable, lead_text, coord_text, deadline = cells
        if not re.fullmatch(r"\d{1,3}", tt_text):
            problems.append(f"{where}, column 'TT': {tt_text!r} is not a row number")
            continue
        tt = int(tt_text)
        if previous_tt is None or tt <= previous_tt:
            section += 1
            if tt != 1:
                after = f"after {previous_tt} " if previous_tt is not None else ""
                problems.append(f"{where}, column 'TT': {tt} {after}starts a new section, "
                                "which must start at 1 (rows out of order or repeated?)")
        elif tt != previous_tt + 1:
            problems.append(f"{where}, column 'TT': {tt} follows {previous_tt} (a row is missing)")
        previous_tt = tt
        for name, value in (("Nhiệm vụ", content), ("Cơ quan chủ trì", lead_text),
                            ("Thời gian hoàn thành", deadline)):
            if not value:
                problems.append(f"{where}, column '{name}': empty")
        if not content or not lead_text or not deadline:
            continue
        resolved: dict[str, list[str]] = {}
        for column, cell in (("Cơ quan chủ trì", lead_text), ("Cơ quan phối hợp", coord_text)):
            if not cell:
                resolved[column] = []
                continue
            try:
                resolved[column] = resolver.resolve_list(cell, field_name=column)
            except (UnknownAgency, ValidationError) as exc:
                detail = exc.message.removeprefix(f"{column}: ")
                problems.append(f"{where}, column '{column}': {detail}")
        if len(resolved) < 2 or not resolved["Cơ quan chủ trì"]:
            continue
        leads, coordinating = resolved["Cơ quan chủ trì"], resolved["Cơ quan phối hợp"]
        try:
            parse_deadline(deadline, deadline_context)
        except DomainError as exc:
            problems.append(f"{where}, column 'Thời gian hoàn thành': {exc.message}")
            continue
        lead = leads[0]
        extra = [c for c in [*leads[1:], *coordinating] if c != lead]
        tasks.append(TaskSpec(
            ordinal=f"{section}.{tt}",
            section=titles.get(section),
            content=content,
            deliverable=deliverable or None,
            lead=lead,
            coordinating=tuple(dict.fromkeys(extra)),
            deadline=deadline,
            lead_text=lead_text,
            coordinating_text=coord_text or None,
        ))
    if table_end is not None:
        for row_no in range(table_end + 1, len(lines) + 1):
            cells = _cells(lines[row_no - 1]) if "|" in lines[row_no - 1] else []
            if len(cells) >= 2 and re.fullmatch(r"\d{1,3}", cells[0]):
                problems.append(
                    f"row {row_no}: a table row after the table ended at row {table_end} "
                    "(a line break inside a cell?)")
                break
    if not tasks and not problems:
        problems.append("the annex table has no rows")
    if problems:
        raise PlanAnnexError(source, problems)

    spec = DirectiveSpec(
        number=number,
        issuer=reference.issuer,
        assigning_office=reference.assigning_office,
        issued_on=issued_on,
        title=title or f"Văn bản {number}",
        signing_capacity=capacity.group(1).strip() if capacity else None,
        references=tuple(references),
        source_text=text,
        plan_last_year=plan_last_year,
        tasks=tuple(tasks),
    )
    return PlanAnnex(province=province, reference=reference, spec=spec)

