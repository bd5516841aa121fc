"""The attribution rules of domain/accountability.py (pure, no I/O)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.accountability import (
    ActFacts,
    ActKind,
    AgencyFacts,
    LeadSpell,
    ObligationFacts,
    Outcome,
    Period,
    TaskRef,
    Tenure,
    assess,
    head_on,
    judge,
    lead_on,
    may_answer_for,
    overdue_at_period_end,
    responsible_agency,
    threshold_advice,
    who_answers,
)
from domain.errors import ValidationError
from domain.rulebook import RULEBOOK

D = date.fromisoformat
TASK = TaskRef("t1", "768/QĐ-UBND", "1.3", "Xây dựng Đề án")
AN = Tenure("Nguyễn Văn An", "Giám đốc Sở", D("2020-01-01"), D("2022-06-30"), False, 10, 50)
BINH = Tenure("Trần Thị Bình", "Giám đốc Sở", D("2022-07-01"), None, False, 51)
PHO = Tenure("Lê Phó", "Phó Giám đốc phụ trách", D("2022-06-20"), D("2022-07-10"), True, 49, 52)
AGENCIES = {
    "SNV": AgencyFacts("SNV", "Sở Nội vụ", tenures=(AN, BINH, PHO)),
    "STT": AgencyFacts("STT", "Sở TT&TT", successor="SKH", merged_on=D("2025-03-01"),
                       merged_at=90, tenures=(Tenure("Cường", "Giám đốc", D("2019-01-01"),
                                                     None, False, 11),)),
    "SKH": AgencyFacts("SKH", "Sở KH&CN", tenures=(Tenure("Dung", "Giám đốc", D("2020-01-01"),
                                                          None, False, 12),)),
    "GRP": AgencyFacts("GRP", "Các sở, ban, ngành", is_group=True),
    "STP": AgencyFacts("STP", "Sở Tư pháp"),
}


def ob(due: str, completed: str | None = None, *, lead: str = "SNV", cancelled: str | None = None,
       leads: tuple[LeadSpell, ...] | None = None, occurrence: str = "once") -> ObligationFacts:
    return ObligationFacts(
        TASK, occurrence, D(due), D(due), D(completed) if completed else None,
        D(cancelled) if cancelled else None,
        leads or (LeadSpell(lead, D("2021-08-26"), 5),), due_evidence=(5,),
        completion_evidence=(70, 71) if completed else ())


# -- periods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, start, end, label", [
    ("2024", "2024-01-01", "2024-12-31", "Năm 2024"),
    ("2024-Q2", "2024-04-01", "2024-06-30", "Quý II năm 2024"),
    ("q4/2023", "2023-10-01", "2023-12-31", "Quý IV năm 2023"),
    ("2024-H2", "2024-07-01", "2024-12-31", "6 tháng cuối năm 2024"),
])
def test_periods(text, start, end, label):
    period = Period.parse(text)
    assert (period.start, period.end, period.label_vi) == (D(start), D(end), label)


@pytest.mark.parametrize("text", ["2024-Q5", "24", "năm 2024", "1900"])
def test_bad_periods_are_refused(text):
    with pytest.raises(ValidationError):
        Period.parse(text)


# -- who answers -----------------------------------------------------------------------------


def test_head_on_a_day_prefers_the_head_over_an_acting_deputy():
    assert head_on((AN, BINH, PHO), D("2022-06-25")) == AN
    assert head_on((AN, BINH, PHO), D("2022-07-01")) == BINH
    assert head_on((AN, PHO), D("2022-07-05")) == PHO  # nobody else in office
    assert head_on((AN,), D("2019-12-31")) is None


def test_lead_on_follows_reassignments_by_effective_date():
    leads = (LeadSpell("SNV", D("2021-08-26"), 5), LeadSpell("STP", D("2023-01-01"), 80))
    assert lead_on(leads, D("2022-12-31")).agency == "SNV"
    assert lead_on(leads, D("2023-01-01")).agency == "STP"
    assert lead_on(leads, D("2020-01-01")).agency == "SNV"  # before assignment: the first


def test_a_merger_counts_only_from_its_effective_date():
    assert responsible_agency("STT", D("2025-02-28"), AGENCIES) == ("STT", ())
    assert responsible_agency("STT", D("2025-03-01"), AGENCIES) == ("SKH", (90,))


def test_who_answers_gives_the_evidence_of_lead_merger_and_tenure():
    leads = (LeadSpell("STT", D("2021-08-26"), 5),)
    who, evidence = who_answers(leads, D("2025-12-31"), AGENCIES)
    assert (who.agency, who.tenure.person, who.kind) == ("SKH", "Dung", "head")
    assert sorted(evidence) == [5, 12, 90]
    who, _ = who_answers((LeadSpell("GRP", D("2021-08-26"), 5),), D("2022-12-31"), AGENCIES)
    assert (who.kind, who.tenure) == ("group", None)
    who, _ = who_answers((LeadSpell("STP", D("2021-08-26"), 5),), D("2022-12-31"), AGENCIES)
    assert who.kind == "no_head"


# -- outcomes --------------------------------------------------------------------------------


def test_outcomes_on_a_day():
    assert judge(ob("2022-06-30", "2022-06-30"), D("2022-07-01")) is Outcome.DONE_ON_TIME
    assert judge(ob("2022-06-30", "2022-07-01"), D("2022-07-02")) is Outcome.DONE_LATE
    assert judge(ob("2022-06-30"), D("2022-06-30")) is None  # due today: not fallen due yet
    assert judge(ob("2022-06-30"), D("2022-07-01")) is Outcome.OVERDUE
    # A late completion not yet dated by the day judged: still overdue that day.
    assert judge(ob("2022-06-30", "2022-08-01"), D("2022-07-15")) is Outcome.OVERDUE
    # Early completion counts as soon as it is done.
    assert judge(ob("2022-12-31", "2022-05-01"), D("2022-06-01")) is Outcome.DONE_ON_TIME


def test_cancellation_before_the_due_date_withdraws_after_it_does_not_erase():
    assert judge(ob("2022-06-30", cancelled="2022-06-30"), D("2023-01-01")) is None
    assert judge(ob("2022-06-30", cancelled="2022-07-05"), D("2023-01-01")) is Outcome.OVERDUE


def test_overdue_at_period_end_is_a_fact_about_the_period():
    year = Period.parse("2022")
    assert overdue_at_period_end(ob("2022-12-31"), year)  # expires at 24:00 on 31/12
    assert overdue_at_period_end(ob("2022-12-25", "2023-01-20"), year)  # done only later
    assert not overdue_at_period_end(ob("2022-12-25", "2022-12-31"), year)
    assert not overdue_at_period_end(ob("2021-12-31"), year)  # fell due in another period


# -- records ---------------------------------------------------------------------------------


def test_each_shortfall_goes_to_the_head_on_its_attribution_day():
    year = Period.parse("2022")
    obligations = [
        ob("2022-03-31"),                              # overdue, An (due under An)
        ob("2022-06-28", "2022-06-28"),                # on time, An
        ob("2022-06-30", "2022-07-15"),                # late: Bình, head on completion day
        ob("2022-12-25", "2023-01-20"),                # late in 2023: Bình's 2023 record
        ob("2021-12-25", "2022-01-10"),                # fell due 2021, late in 2022: An
    ]
    records = {r.answerable.tenure.person: r
               for r in assess(year, D("2023-06-30"), obligations, [], AGENCIES)}
    an, binh = records["Nguyễn Văn An"], records["Trần Thị Bình"]
    assert (an.done_on_time, an.done_late, an.overdue) == (1, 1, 1)
    assert (binh.done_on_time, binh.done_late, binh.overdue) == (0, 1, 0)
    assert an.overdue_at_period_end == 1 and binh.overdue_at_period_end == 1
    assert an.on_time_ratio == pytest.approx(1 / 3) and not an.meets_threshold()
    late = next(s for s in binh.shortfalls if s.kind.value == "done_late")
    assert (late.day, late.evidence) == (D("2022-07-15"), (5, 51, 70, 71))


def test_acts_count_on_the_day_they_were_recorded():
    acts = [
        ActFacts(TASK, "2022", ActKind.EXTENSION_REQUESTED, D("2022-06-15"),
                 (LeadSpell("SNV", D("2021-08-26"), 5),), (60,), True, "granted"),
        ActFacts(TASK, "2022", ActKind.EXTENSION_REQUESTED, D("2022-12-28"),
                 (LeadSpell("SNV", D("2021-08-26"), 5),), (61, 62), False, "granted"),
        ActFacts(TASK, "2022", ActKind.COMPLETION_REJECTED, D("2022-12-08"),
                 (LeadSpell("SNV", D("2021-08-26"), 5),), (63, 64)),
    ]
    records = {r.answerable.tenure.person: r
               for r in assess(Period.parse("2022"), D("2023-01-01"), [], acts, AGENCIES)}
    an, binh = records["Nguyễn Văn An"], records["Trần Thị Bình"]
    assert (an.extensions_requested, an.extensions_granted, an.extensions_requested_late) == (
        1, 1, 0)
    assert (binh.extensions_requested, binh.extensions_requested_late) == (1, 1)
    assert binh.completions_rejected == 1 and binh.shortfalls[0].evidence == (5, 51, 63, 64)
    assert an.fallen_due == 0 and an.on_time_ratio is None


def test_advice_is_advice():
    assert "tham khảo" in threshold_advice(None, RULEBOOK)
    assert "đạt ngưỡng" in threshold_advice(0.85, RULEBOOK)
    assert "chưa đạt" in threshold_advice(0.5, RULEBOOK)


dates = st.dates(D("2021-01-01"), D("2023-12-31"))


@settings(max_examples=200, deadline=None)
@given(due=dates, done=st.none() | dates, cancelled=st.none() | dates, on=dates)
def test_every_obligation_that_fell_due_is_counted_exactly_once_in_some_period(
        due, done, cancelled, on):
    obligation = ObligationFacts(TASK, "once", due, due, done, cancelled,
                                 (LeadSpell("SNV", D("2020-01-01"), 5),))
    outcome = judge(obligation, on)
    counted = 0
    for year in (2021, 2022, 2023):
        for rec in assess(Period.parse(str(year)), on, [obligation], [], AGENCIES):
            counted += rec.fallen_due
    assert counted == (0 if outcome is None else 1)


# -- one agency's records ----------------------------------------------------------------------

CHAIN = {**AGENCIES,  # OLD merged into STT, which later merged into SKH
         "OLD": AgencyFacts("OLD", "Sở cũ", successor="STT", merged_on=D("2022-04-01"),
                            merged_at=60),
         "X": AgencyFacts("X", "Vòng X", successor="Y", merged_on=D("2022-01-01")),
         "Y": AgencyFacts("Y", "Vòng Y", successor="X", merged_on=D("2022-01-01"))}


def test_an_agency_may_answer_for_itself_and_every_agency_merged_into_it():
    assert may_answer_for("SKH", CHAIN) == {"SKH", "STT", "OLD"}
    assert may_answer_for("STT", CHAIN) == {"STT", "OLD"}
    assert may_answer_for("SNV", CHAIN) == {"SNV"}
    assert may_answer_for("GRP", CHAIN) == {"GRP"}
    assert may_answer_for("X", CHAIN) == {"X", "Y"}  # a (bad) cycle of mergers ends
    assert may_answer_for("NEW", CHAIN) == {"NEW"}  # unknown to the ledger: only itself


spells = st.lists(st.builds(LeadSpell, st.sampled_from(sorted(CHAIN)), dates,
                            st.integers(1, 99)), min_size=1, max_size=3).map(tuple)
obligations = st.builds(
    lambda due, done, cancelled, leads, n: ObligationFacts(
        TaskRef(f"t{n}", "1/KH-UBND", str(n)), "once", due, due, done, cancelled, leads,
        due_evidence=(n,)),
    dates, st.none() | dates, st.none() | dates, spells, st.integers(1, 50))
acts = st.builds(
    lambda kind, day, leads, timely, outcome: ActFacts(TASK, "once", kind, day, leads, (7,),
                                                       timely, outcome),
    st.sampled_from(list(ActKind)), dates, spells, st.none() | st.booleans(),
    st.sampled_from([None, "granted", "rejected", "pending"]))


@settings(max_examples=150, deadline=None)
@given(obs=st.lists(obligations, max_size=12), done=st.lists(acts, max_size=6),
       year=st.sampled_from(["2021", "2022", "2023"]), on=dates)
def test_an_agencys_records_need_only_the_tasks_it_may_answer_for(obs, done, year, on):
    """``assess`` of only the obligations and acts whose leads name an agency of
    ``may_answer_for`` gives that agency's records as ``assess`` of everything does."""
    period = Period.parse(year)
    everything = assess(period, on, obs, done, CHAIN)
    for agency in sorted(CHAIN):
        among = may_answer_for(agency, CHAIN)
        mine = [r for r in everything if r.answerable.agency == agency]
        gathered = assess(period, on, [o for o in obs if {s.agency for s in o.leads} & among],
                          [a for a in done if {s.agency for s in a.leads} & among], CHAIN)
        assert [r for r in gathered if r.answerable.agency == agency] == mine
