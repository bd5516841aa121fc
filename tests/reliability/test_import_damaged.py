"""The importer given damaged tables, through the real `ledger import plan` command: each
damage is reported on one stderr line naming the row (the file's line) and column, the
exit code says "refused" (1) or "unreadable" (2), and nothing is stored."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.cli.test_cli_basics import PLAN, run

TEXT = PLAN.read_text("utf-8")
LINES = TEXT.splitlines()
HEADER_ROW = next(i for i, line in enumerate(LINES, 1) if line.startswith("TT |"))
FIRST_ROW = HEADER_ROW + 1  # "1 | Xây dựng Kế hoạch CCHC hằng năm | ... | Sở Nội vụ | ..."


def _row(n: int) -> str:
    return LINES[n - 1]


def _with_row(n: int, new: str | None) -> str:
    lines = list(LINES)
    if new is None:
        del lines[n - 1]
    else:
        lines[n - 1] = new
    return "\n".join(lines) + "\n"


def _cells(n: int) -> list[str]:
    return [c.strip() for c in _row(n).split("|")][:6]


def _join(cells: list[str]) -> str:
    return " | ".join(cells) + " |"


def _set_cell(n: int, column: int, value: str) -> str:
    cells = _cells(n)
    cells[column] = value
    return _with_row(n, _join(cells))


@dataclass(frozen=True)
class Damage:
    name: str
    content: Callable[[], bytes]
    exit_code: int
    expected: tuple[str, ...]  # fragments of the one-line message

    def __str__(self) -> str:
        return self.name


def _swap_header() -> str:
    cells = _cells(HEADER_ROW)
    cells[3], cells[4] = cells[4], cells[3]
    return _with_row(HEADER_ROW, _join(cells))


def _merged_cells() -> str:
    """Row 2 of the table exported from merged cells: the lead and coordinating cells
    became one."""
    cells = _cells(FIRST_ROW + 1)
    merged = [*cells[:3], f"{cells[3]} {cells[4]}", cells[5]]
    return _with_row(FIRST_ROW + 1, _join(merged))


def _merged_lead_down() -> str:
    """A lead cell merged over two rows: the second row's lead cell is empty."""
    return _set_cell(FIRST_ROW + 1, 3, "")


def _line_break_in_cell() -> str:
    cells = _cells(FIRST_ROW + 2)
    lines = list(LINES)
    lines[FIRST_ROW + 1] = " | ".join(cells[:2]) + " (tiếp"
    lines.insert(FIRST_ROW + 2, "theo) | " + " | ".join(cells[2:]) + " |")
    return "\n".join(lines) + "\n"


def _line_break_ends_table() -> str:
    lines = list(LINES)
    lines.insert(FIRST_ROW + 3, "Ghi chú: nhiệm vụ chuyển tiếp")
    return "\n".join(lines) + "\n"


def _out_of_order() -> str:
    lines = list(LINES)
    lines[FIRST_ROW], lines[FIRST_ROW + 1] = lines[FIRST_ROW + 1], lines[FIRST_ROW]
    return "\n".join(lines) + "\n"


def _truncated() -> bytes:
    cut = TEXT.index(_row(FIRST_ROW + 5)) + 40
    return TEXT[:cut].encode("utf-8")


def _truncated_mid_character() -> bytes:
    raw = TEXT.encode("utf-8")
    cut = raw.index("Xây dựng Kế hoạch CCHC".encode()) + len("Xây dựng Kế ho".encode()) + 1
    return raw[:cut] + b"\xe1\xba"  # the first two bytes of a three-byte character


DAMAGES = [
    Damage("a header with the wrong columns", lambda: _swap_header().encode(), 1,
           (f"row {HEADER_ROW}, column 4", "'Cơ quan chủ trì' is expected")),
    Damage("a header with a missing column",
           lambda: _with_row(HEADER_ROW, "TT | Nhiệm vụ | Cơ quan chủ trì | Cơ quan phối hợp"
                             " | Thời gian hoàn thành |").encode(), 1,
           (f"row {HEADER_ROW}: the header has 5 columns",)),
    Damage("a missing column in a row",
           lambda: _with_row(FIRST_ROW, _join(_cells(FIRST_ROW)[:5])).encode(), 1,
           (f"row {FIRST_ROW}: 5 columns instead of 6",)),
    Damage("merged cells", lambda: _merged_cells().encode(), 1,
           (f"row {FIRST_ROW + 1}: 5 columns instead of 6", "merged")),
    Damage("a lead cell merged over two rows", lambda: _merged_lead_down().encode(), 1,
           (f"row {FIRST_ROW + 1}, column 'Cơ quan chủ trì': empty",)),
    Damage("empty cells", lambda: _set_cell(FIRST_ROW + 3, 5, "").encode(), 1,
           (f"row {FIRST_ROW + 3}, column 'Thời gian hoàn thành': empty",)),
    Damage("an unknown agency", lambda: _set_cell(FIRST_ROW, 3, "Sở Không Tồn Tại").encode(), 1,
           (f"row {FIRST_ROW}, column 'Cơ quan chủ trì': unknown agency",)),
    Damage("an unknown coordinating agency",
           lambda: _set_cell(FIRST_ROW, 4, "Sở Nội vụ; Ban Không Có").encode(), 1,
           (f"row {FIRST_ROW}, column 'Cơ quan phối hợp'",)),
    Damage("an unreadable deadline", lambda: _set_cell(FIRST_ROW, 5, "xong sớm nhất").encode(), 1,
           (f"row {FIRST_ROW}, column 'Thời gian hoàn thành'", "xong sớm nhất")),
    Damage("rows out of order", lambda: _out_of_order().encode(), 1,
           (f"row {FIRST_ROW + 1}, column 'TT': 3 follows 1",
            f"row {FIRST_ROW + 2}, column 'TT': 2 after 3 starts a new section")),
    Damage("a row number that is not a number",
           lambda: _set_cell(FIRST_ROW + 2, 0, "3a").encode(), 1,
           (f"row {FIRST_ROW + 2}, column 'TT': '3a' is not a row number",)),
    Damage("a missing row", lambda: _with_row(FIRST_ROW + 2, None).encode(), 1,
           (f"row {FIRST_ROW + 2}, column 'TT': 4 follows 2",)),
    Damage("a line break inside a cell", lambda: _line_break_in_cell().encode(), 1,
           (f"row {FIRST_ROW + 2}: 2 columns instead of 6",)),
    Damage("a stray line inside the table", lambda: _line_break_ends_table().encode(), 1,
           (f"row {FIRST_ROW + 5}: a table row after the table ended at row "
            f"{FIRST_ROW + 4}",)),
    Damage("a control character in a cell",
           lambda: _set_cell(FIRST_ROW, 1, "Xây dựng\x1bKế hoạch").encode(), 1,
           (f"row {FIRST_ROW}, column 'Nhiệm vụ'", "U+001B")),
    Damage("a truncated file", _truncated, 1, (f"row {FIRST_ROW + 5}: ",
                                               "truncated file")),
    Damage("a file truncated in the middle of a character", _truncated_mid_character, 2,
           (f"not UTF-8 text at line {FIRST_ROW}",)),
    Damage("a file cut before its table",
           lambda: "\n".join(LINES[:HEADER_ROW - 1]).encode(), 1, ("no annex table",)),
    Damage("a binary file", lambda: b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4, 2,
           ("a binary file", "line 1, column 6")),
    Damage("a spreadsheet saved as Windows-1258",
           lambda: unicodedata.normalize("NFD", TEXT).encode("cp1258", errors="replace"), 2,
           ("not UTF-8 text at line 1",)),
    Damage("an empty file", lambda: b"", 1, ("header: no line",)),
]


@pytest.mark.parametrize("damage", DAMAGES, ids=str)
def test_a_damaged_table_is_refused_with_row_and_column(damage, tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    path = tmp_path / "damaged.txt"
    path.write_bytes(damage.content())
    result = run(url, "import", "plan", str(path))
    assert result.returncode == damage.exit_code, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    message = " ".join(result.stderr.split())
    for fragment in damage.expected:
        assert fragment in message, (fragment, message)
    assert run(url, "events", "--json").stdout == ""


@pytest.mark.parametrize("variant", ["windows line endings and a BOM", "UTF-16 with a BOM",
                                     "old Mac line endings"])
def test_tolerable_encodings_import_the_same_45_tasks(variant, tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    path = tmp_path / "plan.txt"
    if variant == "windows line endings and a BOM":
        path.write_bytes(b"\xef\xbb\xbf" + TEXT.replace("\n", "\r\n").encode("utf-8"))
    elif variant == "UTF-16 with a BOM":
        path.write_bytes(TEXT.replace("\n", "\r\n").encode("utf-16"))
    else:
        path.write_bytes(TEXT.replace("\n", "\r").encode("utf-8"))
    result = run(url, "import", "plan", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tasks"] == 45


@pytest.mark.postgres
def test_damaged_tables_store_nothing_on_postgresql(pg_schema_url, tmp_path):
    for damage in DAMAGES[:6] + DAMAGES[-4:]:
        path = tmp_path / "damaged.txt"
        path.write_bytes(damage.content())
        result = run(pg_schema_url, "import", "plan", str(path))
        assert result.returncode == damage.exit_code, (damage.name, result.stderr)
    assert run(pg_schema_url, "events", "--json").stdout == ""
    assert run(pg_schema_url, "import", "plan", str(PLAN)).returncode == 0
