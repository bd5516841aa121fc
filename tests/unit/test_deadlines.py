"""Every deadline phrase in the seed documents, read into its normal form (DESIGN §3)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.deadlines import ONCE, DeadlineContext, DeadlineKind, Frequency, parse_deadline
from domain.errors import UnparseableDeadline, ValidationError
from domain.rulebook import RULEBOOK

PLAN = DeadlineContext(assigned_on=date(2021, 8, 26), last_year=2025)
NEWS = DeadlineContext(assigned_on=date(2024, 3, 11))

# (phrase, kind, due date or None, frequency or None) — the 16 phrases of the 768 annex.
ANNEX = [
    ("Trước 25/12 năm báo cáo", DeadlineKind.RECURRING, None, Frequency.YEARLY),
    ("Quý I năm kế hoạch", DeadlineKind.RECURRING, None, Frequency.YEARLY),
    ("Quý II năm 2022", DeadlineKind.PERIOD_END, date(2022, 6, 30), None),
    ("Quý IV năm 2021", DeadlineKind.PERIOD_END, date(2021, 12, 31), None),
    ("Trước 31/12 năm báo cáo", DeadlineKind.RECURRING, None, Frequency.YEARLY),
    ("Năm 2022 và các năm tiếp theo", DeadlineKind.STANDING, None, None),
    ("Năm 2022 và những năm tiếp theo", DeadlineKind.STANDING, None, None),
    ("Hằng năm", DeadlineKind.RECURRING, None, Frequency.YEARLY),
    ("Hằng năm theo thông báo của Bộ Tư pháp", DeadlineKind.RECURRING, None, Frequency.YEARLY),
    ("Thường xuyên", DeadlineKind.STANDING, None, None),
    ("Năm 2022", DeadlineKind.PERIOD_END, date(2022, 12, 31), None),
    ("Theo quy định của Trung ương", DeadlineKind.CONDITIONAL, None, None),
    ("Sau khi có hướng dẫn của Bộ, ngành TW", DeadlineKind.CONDITIONAL, None, None),
    ("Năm 2021 - 2022", DeadlineKind.PERIOD_END, date(2022, 12, 31), None),
    ("Sau khi có chủ trương của Ban TVTW", DeadlineKind.CONDITIONAL, None, None),
    ("Năm 2021", DeadlineKind.PERIOD_END, date(2021, 12, 31), None),
]

# Phrases of the other seeds (weekly digests of Quảng Ngãi and Lạng Sơn) and DESIGN §3.
OTHERS = [
    ("chậm nhất ngày 30/8/2022", DeadlineKind.ABSOLUTE, date(2022, 8, 30)),
    ("trước ngày 15/7/2024", DeadlineKind.ABSOLUTE, date(2024, 7, 15)),
    ("hoàn thành trước ngày 15/7/2024", DeadlineKind.ABSOLUTE, date(2024, 7, 15)),
    ("trước ngày 31/5/2024", DeadlineKind.ABSOLUTE, date(2024, 5, 31)),
    ("hoàn thành trong tháng 5/2024", DeadlineKind.ABSOLUTE, date(2024, 5, 31)),
    ("xong trước ngày 26/4/2024", DeadlineKind.ABSOLUTE, date(2024, 4, 26)),
    ("trước ngày 25/3/2024, chậm nhất là ngày 30/3/2024", DeadlineKind.ABSOLUTE, date(2024, 3, 30)),
    ("chậm nhất trong năm 2025", DeadlineKind.PERIOD_END, date(2025, 12, 31)),
    ("chậm nhất hoàn thành trong năm 2024", DeadlineKind.PERIOD_END, date(2024, 12, 31)),
    ("hoàn thành trong tháng 2/2024", DeadlineKind.ABSOLUTE, date(2024, 2, 29)),
]


def annex_phrases() -> set[str]:
    text = resources.files("cli.samples").joinpath(
        "quang-ngai-768-QD-UBND-2021-ke-hoach-cchc.txt").read_text("utf-8")
    rows = [line for line in text.splitlines() if re.match(r"^\d+ \|", line)]
    return {[c.strip() for c in row.split("|")][5] for row in rows}


def test_the_annex_uses_exactly_the_sixteen_phrases_listed_here():
    assert annex_phrases() == {phrase for phrase, *_ in ANNEX}
    assert len(ANNEX) == 16


@pytest.mark.parametrize(("phrase", "kind", "due", "frequency"), ANNEX)
def test_annex_phrase(phrase, kind, due, frequency):
    deadline = parse_deadline(phrase, PLAN)
    assert deadline.kind is kind
    assert deadline.text == phrase  # the phrase is kept as written
    assert deadline.due_on == due
    assert deadline.frequency == frequency


@pytest.mark.parametrize(("phrase", "kind", "due"), OTHERS)
def test_other_seed_phrases(phrase, kind, due):
    deadline = parse_deadline(phrase, NEWS)
    assert (deadline.kind, deadline.due_on) == (kind, due)


def test_every_parsed_deadline_is_consistent_and_a_damaged_one_is_not():
    parsed = ([parse_deadline(phrase, PLAN) for phrase, *_ in ANNEX]
              + [parse_deadline(phrase, NEWS) for phrase, *_ in OTHERS])
    assert [d.text for d in parsed if d.inconsistency() is not None] == []
    dated = next(d for d in parsed if d.kind is DeadlineKind.ABSOLUTE)
    recurring = next(d for d in parsed if d.kind is DeadlineKind.RECURRING)
    assert "no due date" in replace(dated, due_on=None).inconsistency()
    assert "no frequency" in replace(recurring, frequency=None).inconsistency()
    assert "not a day" in replace(recurring, month=13).inconsistency()
    assert "month is '12'" in replace(recurring, month="12").inconsistency()
    assert "not a day" in replace(recurring, month=2, day=30).inconsistency()
    assert replace(recurring, month=2, day=29).inconsistency() is None
    assert "outside the dates" in replace(dated, due_on=date(9999, 12, 31)).inconsistency()
    assert "first_year is 9999" in replace(recurring, first_year=9999).inconsistency()
    assert "last_year is 1900" in replace(recurring, last_year=1900).inconsistency()
    assert replace(recurring, first_year=1945, last_year=2100).inconsistency() is None


def test_recurring_yearly_due_day_and_occurrences_follow_the_plan_period():
    deadline = parse_deadline("Trước 25/12 năm báo cáo", PLAN)
    assert (deadline.month, deadline.day) == (12, 25)
    keys = [o.key for o in deadline.occurrences(date(2021, 8, 26), date(2030, 1, 1))]
    assert keys == ["2021", "2022", "2023", "2024", "2025"]  # the plan ends in 2025
    assert deadline.occurrence_due("2023") == date(2023, 12, 25)
    with pytest.raises(ValueError):
        deadline.occurrence_due("2026")


def test_first_quarter_of_the_plan_year_skips_the_quarter_already_past_at_assignment():
    deadline = parse_deadline("Quý I năm kế hoạch", PLAN)
    occurrences = deadline.occurrences(date(2021, 8, 26), date(2022, 12, 31))
    assert [(o.key, o.due_on) for o in occurrences] == [
        ("2022", date(2022, 3, 31)), ("2023", date(2023, 3, 31))]


def test_occurrences_stop_one_after_the_horizon():
    deadline = parse_deadline("Hằng năm", PLAN)
    occurrences = deadline.occurrences(date(2021, 8, 26), date(2022, 6, 1))
    assert [o.key for o in occurrences] == ["2021", "2022"]


def test_quarterly_reports():
    deadline = parse_deadline("Định kỳ hằng quý, 6 tháng, hằng năm hoặc đột xuất", PLAN)
    assert deadline.frequency is Frequency.QUARTERLY
    assert deadline.occurrence_due("2022-Q2") == date(2022, 6, 30)
    with pytest.raises(ValueError):
        deadline.occurrence_due("2022-Q5")


def test_single_deadlines_have_one_occurrence_and_standing_none():
    assert [o.key for o in parse_deadline("Năm 2022", PLAN).occurrences(
        date(2021, 8, 26), date(2021, 9, 1))] == [ONCE]
    assert parse_deadline("Thường xuyên", PLAN).occurrences(date(2021, 8, 26),
                                                            date(2030, 1, 1)) == []


def test_conditional_deadline_waits_for_its_trigger():
    deadline = parse_deadline("Sau khi có hướng dẫn của Bộ, ngành TW", PLAN)
    assert deadline.is_dormant and not deadline.has_due_date
    triggered = deadline.triggered(date(2022, 9, 30))
    assert triggered.has_due_date and triggered.occurrence_due(ONCE) == date(2022, 9, 30)
    assert triggered.text == deadline.text


def test_before_date_reading_is_configurable_in_the_rulebook():
    strict = replace(RULEBOOK, version="test", before_date_is_due_on_date=False)
    context = DeadlineContext(date(2024, 3, 11), None, strict)
    assert parse_deadline("trước ngày 15/7/2024", context).due_on == date(2024, 7, 14)
    assert parse_deadline("trước ngày 15/7/2024", NEWS).due_on == date(2024, 7, 15)


def test_hang_nam_spelling_variant():
    assert parse_deadline("Hàng năm", PLAN).frequency is Frequency.YEARLY


@pytest.mark.parametrize(
    ("phrase", "problem"),
    [
        ("sớm nhất có thể", "not a known form"),
        ("31/2/2024", "not a calendar date"),
        ("trước ngày 32/1/2024", "not a calendar date"),
        ("Quý V năm 2021", "not a known form"),
        ("hoàn thành trong tháng 13/2024", "month 13"),
        ("Năm 2022 - 2021", "ends (2021) before it starts (2022)"),
        ("Năm 1800", "out of range"),
    ],
)
def test_unparseable_phrases_are_refused_naming_the_phrase(phrase, problem):
    with pytest.raises(UnparseableDeadline) as caught:
        parse_deadline(phrase, PLAN)
    assert phrase in str(caught.value)
    assert problem in str(caught.value)


def test_empty_and_non_nfc_phrases_are_refused():
    with pytest.raises(ValidationError, match="must not be empty"):
        parse_deadline("  ", PLAN)
    import unicodedata

    with pytest.raises(ValidationError, match="NFC"):
        parse_deadline(unicodedata.normalize("NFD", "Hằng năm"), PLAN)


def _occurrences_one_by_one(deadline, assigned_on: date, until: date) -> list[tuple[str, date]]:
    """``Deadline.occurrences`` as it was before its schedules were cached: every period
    from the first year on, due dates worked out from the keys, until one falls after
    ``until``."""
    from domain.deadlines import _recurring_due

    year = max(assigned_on.year, deadline.first_year or assigned_on.year)
    out = []
    while deadline.last_year is None or year <= deadline.last_year:
        keys = ([str(year)] if deadline.frequency is Frequency.YEARLY
                else [f"{year}-Q{q}" for q in range(1, 5)]
                if deadline.frequency is Frequency.QUARTERLY
                else [f"{year}-{m:02d}" for m in range(1, 13)])
        for key in keys:
            due = _recurring_due(deadline, key)
            if due < assigned_on:
                continue
            out.append((key, due))
            if due > until:
                return out
        year += 1
        if year > 2100:
            break
    return out


_RECURRING = [parse_deadline(text, context) for text, context in (
    ("Hằng năm", PLAN), ("Quý I năm kế hoạch", PLAN), ("Trước 25/12 năm báo cáo", PLAN),
    ("Định kỳ hằng quý, 6 tháng, hằng năm hoặc đột xuất", PLAN),
    ("Hằng năm", DeadlineContext(date(2021, 8, 26))),
    ("Định kỳ hằng tháng", DeadlineContext(date(2021, 8, 26))),
)]


@settings(max_examples=300, deadline=None)
@given(deadline=st.sampled_from(_RECURRING),
       first_year=st.none() | st.integers(2019, 2031),
       last_year=st.none() | st.integers(2019, 2031),
       assigned_on=st.dates(date(2018, 1, 1), date(2032, 12, 31)),
       until=st.dates(date(2018, 1, 1), date(2034, 12, 31)))
def test_cached_schedules_list_the_same_occurrences(deadline, first_year, last_year,
                                                    assigned_on, until):
    assert all(d.kind is DeadlineKind.RECURRING for d in _RECURRING)
    deadline = replace(deadline, first_year=first_year, last_year=last_year)
    for _ in range(2):  # computed, then from the cache
        assert [(o.key, o.due_on) for o in deadline.occurrences(assigned_on, until)] == (
            _occurrences_one_by_one(deadline, assigned_on, until))
