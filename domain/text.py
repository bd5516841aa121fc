"""Vietnamese text at the boundary of the domain.

Text is stored exactly as given, so it must already be in Unicode NFC: the same word in
NFC and NFD compares unequal, sorts differently and hashes differently, which would let
"Sở Nội vụ" and "Sở Nội vụ" become two agencies. We refuse non-NFC input with a clear
message instead of silently rewriting what a document said; importers offer an explicit
``--nfc`` switch that normalises files before they reach the domain.
"""

from __future__ import annotations

import re
import unicodedata

from domain.errors import TextNotNormalised, ValidationError

# C0 and C1 controls (tab, LF and CR allowed), bidirectional embedding/override/isolate
# controls (they make stored text display differently from what it says: "Trojan source"),
# unpaired surrogates (not characters at all) and Unicode noncharacters.
_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]"
)
_SPACES = re.compile(r"\s+")


def require_nfc(value: str, field: str) -> str:
    if not unicodedata.is_normalized("NFC", value):
        raise TextNotNormalised(
            f"{field}: text is not in Unicode NFC form (decomposed diacritics?); "
            "normalise it to NFC before sending",
            field=field,
        )
    return value


def control_character(value: str) -> str | None:
    """The first forbidden character in ``value`` as 'U+XXXX', or None."""
    bad = _CONTROL.search(value)
    return f"U+{ord(bad.group()):04X}" if bad else None


def clean_text(
    value: object, field: str, *, required: bool = True, max_length: int = 20_000
) -> str:
    """Validate one text field: a string, NFC, no control characters, trimmed.

    Inner whitespace runs are kept as written (they can matter in quoted content);
    only leading and trailing whitespace is removed.
    """
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError(f"{field}: expected text, got {type(value).__name__}", field=field)
    bad = _CONTROL.search(value)
    if bad:
        raise ValidationError(
            f"{field}: contains a control or invisible formatting character "
            f"(U+{ord(bad.group()):04X})",
            field=field,
        )
    require_nfc(value, field)
    value = value.strip()
    if required and not value:
        raise ValidationError(f"{field}: must not be empty", field=field)
    if len(value) > max_length:
        raise ValidationError(
            f"{field}: longer than {max_length} characters ({len(value)})", field=field
        )
    return value


def optional_text(value: object, field: str, *, max_length: int = 20_000) -> str | None:
    cleaned = clean_text(value, field, required=False, max_length=max_length)
    return cleaned or None


def fold(value: str) -> str:
    """A comparison key: NFC, case-folded, single spaces, no trailing punctuation.

    Used to match agency names written in different ways in documents
    ("Sở Thông tin và TT" vs "sở thông tin và tt."). Diacritics are kept: "Sở" and
    "Số" are different words.
    """
    value = unicodedata.normalize("NFC", value)
    value = _SPACES.sub(" ", value).strip().strip(".;,:").strip()
    return value.casefold()
