"""Số, ký hiệu văn bản: the number and symbol of an administrative document.

Forms handled (Nghị định 30/2020/NĐ-CP, Phụ lục III; Luật Ban hành VBQPPL for the year):

* ``1791/UBND-TTHC``   công văn: number / issuer - drafting unit (no type abbreviation)
* ``87/KH-UBND``       kế hoạch: number / type - issuer
* ``01/2024/QĐ-UBND``  legal normative document: number / year / type - issuer
* ``1063/VP-KT``       công văn of the Office: number / issuer - unit
* ``07-NQ/TW``         Party documents: number - type / issuer

A symbol part is upper-case letters (Vietnamese Đ included) and digits; "QyĐ" and "CTr"
keep their official mixed case. Malformed numbers are refused with a message that says
what is wrong, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.errors import InvalidDocumentNumber
from domain.text import require_nfc

# Type abbreviations of Nghị định 30/2020/NĐ-CP, Phụ lục III, with the document type name.
DOCUMENT_TYPES: dict[str, str] = {
    "NQ": "Nghị quyết",
    "QĐ": "Quyết định",
    "CT": "Chỉ thị",
    "QC": "Quy chế",
    "QyĐ": "Quy định",
    "TC": "Thông cáo",
    "TB": "Thông báo",
    "HD": "Hướng dẫn",
    "CTr": "Chương trình",
    "KH": "Kế hoạch",
    "PA": "Phương án",
    "ĐA": "Đề án",
    "DA": "Dự án",
    "BC": "Báo cáo",
    "BB": "Biên bản",
    "TTr": "Tờ trình",
    "HĐ": "Hợp đồng",
    "CĐ": "Công điện",
    "BGN": "Bản ghi nhớ",
    "BTT": "Bản thỏa thuận",
    "GUQ": "Giấy ủy quyền",
    "GM": "Giấy mời",
    "GGT": "Giấy giới thiệu",
    "GNP": "Giấy nghỉ phép",
    "PG": "Phiếu gửi",
    "PC": "Phiếu chuyển",
    "PB": "Phiếu báo",
}
CONG_VAN = "Công văn"

_PART = re.compile(r"^(?:[A-ZĐ0-9]+|QyĐ|CTr|TTr|TTg)$")
_NUMBER = re.compile(r"^[0-9]{1,6}$")
# Look-alikes of Đ (U+0110) seen in scanned and hand-typed numbers.
_D_LOOKALIKES = {"\u00d0": "U+00D0 (Ð, Icelandic eth)", "\u0189": "U+0189 (Ɖ, African D)"}


@dataclass(frozen=True, slots=True)
class DocumentNumber:
    number: str
    symbol: str
    year: int | None = None
    party_form: bool = False

    @classmethod
    def parse(cls, text: str) -> DocumentNumber:
        return parse_document_number(text)

    def __str__(self) -> str:
        if self.party_form:
            type_code, issuer = self.symbol.split("/", 1)
            return f"{self.number}-{type_code}/{issuer}"
        if self.year is not None:
            return f"{self.number}/{self.year}/{self.symbol}"
        return f"{self.number}/{self.symbol}"

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(re.split(r"[-/]", self.symbol))

    @property
    def type_code(self) -> str | None:
        first = self.parts[0]
        return first if first in DOCUMENT_TYPES else None

    @property
    def document_type(self) -> str:
        """Vietnamese name of the document type; a symbol without one is a công văn."""
        code = self.type_code
        return DOCUMENT_TYPES[code] if code else CONG_VAN

    @property
    def issuer_code(self) -> str:
        """Abbreviation of the issuing body (UBND, VP, BXD...)."""
        parts = self.parts
        return parts[1] if self.type_code and len(parts) > 1 else parts[0]


def _fail(text: str, problem: str) -> InvalidDocumentNumber:
    return InvalidDocumentNumber(
        f"document number {text!r}: {problem}", field="document_number"
    )


def _check_symbol_parts(text: str, parts: list[str]) -> None:
    for part in parts:
        if not part:
            raise _fail(text, "empty part in the symbol (two dashes in a row, or a trailing dash)")
        for char, name in _D_LOOKALIKES.items():
            if char in part:
                raise _fail(text, f"contains {name} instead of Đ (U+0110)")
        if not _PART.match(part):
            raise _fail(
                text,
                f"symbol part {part!r} must be upper-case letters or digits "
                "(Vietnamese Đ allowed; mixed case only in QyĐ, CTr, TTr, TTg)",
            )


def parse_document_number(text: str) -> DocumentNumber:
    if not isinstance(text, str):
        raise InvalidDocumentNumber("document number must be text", field="document_number")
    require_nfc(text, "document_number")
    raw = text
    text = text.strip()
    if text.lower().startswith("số"):
        text = text[2:].lstrip(" :.")
    text = re.sub(r"\s*([/-])\s*", r"\1", text)
    if not text:
        raise _fail(raw, "is empty")
    if " " in text:
        raise _fail(raw, "contains spaces inside the number/symbol")

    party = re.match(r"^([0-9]{1,6})-([^/]+)/(.+)$", text)
    if party and "/" not in party.group(2):
        number, type_code, issuer = party.groups()
        if type_code not in DOCUMENT_TYPES:
            raise _fail(raw, f"unknown document type {type_code!r} in a Party-style number")
        _check_symbol_parts(raw, issuer.split("-"))
        return DocumentNumber(number=number, symbol=f"{type_code}/{issuer}", party_form=True)

    if "/" not in text:
        raise _fail(raw, "has no '/' between the number and the symbol (expected e.g. 87/KH-UBND)")
    pieces = text.split("/")
    number = pieces[0]
    if not number:
        raise _fail(raw, "is missing the number before '/'")
    if not _NUMBER.match(number):
        raise _fail(raw, f"number {number!r} must be 1 to 6 digits")
    year: int | None = None
    if len(pieces) == 3:
        year_text = pieces[1]
        if not re.fullmatch(r"[0-9]{4}", year_text):
            raise _fail(raw, f"year {year_text!r} must be four digits")
        year = int(year_text)
        if not 1945 <= year <= 2100:
            raise _fail(raw, f"year {year} is out of range 1945-2100")
        symbol = pieces[2]
    elif len(pieces) == 2:
        symbol = pieces[1]
    else:
        raise _fail(raw, "has too many '/' (expected number/symbol or number/year/symbol)")
    if not symbol:
        raise _fail(raw, "is missing the symbol after '/'")
    parts = symbol.split("-")
    _check_symbol_parts(raw, parts)
    if len(parts) < 2:
        raise _fail(
            raw,
            f"symbol {symbol!r} needs at least two parts joined by '-' "
            "(type-issuer such as KH-UBND, or issuer-unit such as UBND-TTHC)",
        )
    if int(number) == 0:
        raise _fail(raw, "number must not be zero")
    return DocumentNumber(number=number, symbol=symbol, year=year)
