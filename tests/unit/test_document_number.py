from __future__ import annotations

import unicodedata

import pytest

from domain.document_number import DocumentNumber
from domain.errors import InvalidDocumentNumber, TextNotNormalised


@pytest.mark.parametrize(
    ("text", "number", "year", "symbol", "doc_type", "issuer"),
    [
        ("1791/UBND-TTHC", "1791", None, "UBND-TTHC", "Công văn", "UBND"),
        ("87/KH-UBND", "87", None, "KH-UBND", "Kế hoạch", "UBND"),
        ("01/2024/QĐ-UBND", "01", 2024, "QĐ-UBND", "Quyết định", "UBND"),
        ("1063/VP-KT", "1063", None, "VP-KT", "Công văn", "VP"),
        ("768/QĐ-UBND", "768", None, "QĐ-UBND", "Quyết định", "UBND"),
        ("96/TB-VPCP", "96", None, "TB-VPCP", "Thông báo", "VPCP"),
        ("884/BLĐTBXH-CPCTNXH", "884", None, "BLĐTBXH-CPCTNXH", "Công văn", "BLĐTBXH"),
        ("468/QĐ-TTg", "468", None, "QĐ-TTg", "Quyết định", "TTg"),
        ("Số: 75/BC-SKHĐT", "75", None, "BC-SKHĐT", "Báo cáo", "SKHĐT"),
        ("1848 / SNV-CCHC", "1848", None, "SNV-CCHC", "Công văn", "SNV"),
    ],
)
def test_valid_numbers(text, number, year, symbol, doc_type, issuer):
    parsed = DocumentNumber.parse(text)
    assert (parsed.number, parsed.year, parsed.symbol) == (number, year, symbol)
    assert parsed.document_type == doc_type
    assert parsed.issuer_code == issuer


def test_round_trip_to_canonical_text():
    assert str(DocumentNumber.parse("01/2024/QĐ-UBND")) == "01/2024/QĐ-UBND"
    assert str(DocumentNumber.parse(" Số: 87 / KH-UBND ")) == "87/KH-UBND"


def test_party_style_number():
    parsed = DocumentNumber.parse("07-NQ/TW")
    assert parsed.party_form and str(parsed) == "07-NQ/TW"
    assert parsed.document_type == "Nghị quyết"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1791UBND-TTHC", "has no '/'"),
        ("/UBND-TTHC", "missing the number"),
        ("1791/", "missing the symbol"),
        ("abc/UBND-TTHC", "must be 1 to 6 digits"),
        ("1791/UBND", "at least two parts"),
        ("1791/UBND--TTHC", "empty part"),
        ("01/24/QĐ-UBND", "four digits"),
        ("01/1900/QĐ-UBND", "out of range"),
        ("1/2/3/QĐ-UBND", "too many '/'"),
        ("87/kh-UBND", "upper-case"),
        ("87/KH-ÐUBND", "U+00D0"),
        ("0/KH-UBND", "must not be zero"),
        ("", "is empty"),
        ("87/KH UBND", "spaces"),
    ],
)
def test_malformed_numbers_name_the_problem(text, problem):
    with pytest.raises(InvalidDocumentNumber) as caught:
        DocumentNumber.parse(text)
    assert problem in str(caught.value)


def test_non_nfc_number_is_refused():
    with pytest.raises(TextNotNormalised):
        DocumentNumber.parse(unicodedata.normalize("NFD", "87/KH-UBNDẾ"))
