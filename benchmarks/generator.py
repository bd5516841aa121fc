"""A synthetic ledger with the shape of the seeds, deterministic by seed.

Agencies are the Quảng Ngãi reference list (plus synthetic communes when asked for more),
each with one to three heads over the years. Directives carry 1-50 tasks (most carry few:
the distribution is skewed like the seeds: weekly digests give 1-5 tasks, plans 30-50), with
deadlines drawn from the phrases in the seeds. Each task then lives a realistic life:
progress reports, extension requests (timely or late; granted or rejected), completion
reports that are confirmed or rejected, some cancellations; a recurring task lives such a
life for every period until the ledger's horizon.

Events are produced by the real aggregates (so every rule is enforced) under a simulated
ledger clock that moves forward, and handed out in batches of aggregates ready to be saved.
The generator never reads the store, so it can feed any writer (bulk import, the plain
library, HTTP clients).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from domain.agency import Agency, AgencyLevel
from domain.clock import LOCAL_TZ, local_date
from domain.deadlines import DeadlineContext, DeadlineKind, parse_deadline
from domain.directive import Directive
from domain.directive_index import DirectiveNumber
from domain.errors import DomainError
from domain.reference import load_reference
from domain.rulebook import RULEBOOK
from domain.task import Task

PHRASES = [
    "Quý IV năm {y}", "Quý II năm {y1}", "Năm {y1}", "Năm {y} - {y1}", "Hằng năm",
    "Trước 25/12 năm báo cáo", "Trước 31/12 năm báo cáo", "Quý I năm kế hoạch", "Thường xuyên",
    "Năm {y1} và những năm tiếp theo", "Sau khi có hướng dẫn của Bộ, ngành TW",
    "chậm nhất ngày {d}", "trước ngày {d}", "hoàn thành trong tháng {m}",
]
# Weights: dated deadlines dominate, as in real directives.
PHRASE_WEIGHTS = [6, 4, 6, 2, 5, 2, 2, 1, 2, 1, 1, 12, 14, 6]
TYPES = ["KH-UBND", "UBND-TTHC", "UBND-KT", "UBND-NC", "QĐ-UBND", "VP-KT", "VP-KGVX", "TB-UBND"]
PEOPLE = ["Nguyễn Văn", "Trần Thị", "Lê Văn", "Phạm Thị", "Hoàng Văn", "Võ Thị", "Đặng Văn",
          "Bùi Thị", "Đỗ Văn", "Huỳnh Thị"]
GIVEN = ["An", "Bình", "Cường", "Dũng", "Hà", "Hải", "Hòa", "Hùng", "Lan", "Minh", "Nam",
         "Phúc", "Quang", "Sơn", "Tâm", "Thảo", "Trung", "Tuấn", "Việt", "Yến"]


@dataclass
class SimClock:
    """The simulated ledger clock: only moves forward."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def tick(self, rng: random.Random, max_minutes: int = 240) -> datetime:
        self.now += timedelta(minutes=rng.randint(1, max_minutes))
        return self.now


@dataclass
class Batch:
    """Aggregates with pending events, to be saved together."""

    aggregates: list[Any] = field(default_factory=list)
    events: int = 0


class SyntheticLedger:
    def __init__(self, seed: int = 7, *, start: str = "2021-01-04 08:00",
                 extra_agencies: int = 0) -> None:
        self.rng = random.Random(seed)
        self.clock = SimClock(
            datetime.fromisoformat(start).replace(tzinfo=LOCAL_TZ).astimezone(UTC))
        self.meta_office = {"actor": "bench:office", "actor_role": "office",
                            "actor_agency": "QNG-VPUBND", "correlation_id": "bench",
                            "causation_id": None, "source_document": None}
        reference = load_reference("quang-ngai")
        self.records = list(reference.agencies)
        self.extra_agencies = extra_agencies
        self.leads = [r.code for r in self.records if r.level in (
            AgencyLevel.PROVINCIAL, AgencyLevel.DISTRICT)]
        self.groups = [r.code for r in self.records if r.level is AgencyLevel.GROUP]
        self.numbers: set[str] = set()
        self.agenda: list[tuple[datetime, int, Task, Any, Any]] = []
        self.horizon = local_date(self.clock.now) + timedelta(days=5 * 366)
        self.sequence = itertools.count()

    def _meta(self, agency: str | None = None) -> dict[str, Any]:
        if agency is None:
            return self.meta_office
        return {**self.meta_office, "actor": f"bench:{agency}", "actor_role": "agency",
                "actor_agency": agency}

    # -- agencies --------------------------------------------------------------------------

    def agencies(self) -> Batch:
        batch = Batch()
        ts = self.clock()
        for record in self.records:
            agency = Agency.register(
                code=record.code, name=record.name, level=record.level, parent=None,
                aliases=list(record.aliases), established_on=None,
                member_levels=list(record.member_levels), meta=self.meta_office, timestamp=ts)
            if record.level in (AgencyLevel.PROVINCIAL, AgencyLevel.DISTRICT):
                self._heads(agency)
            batch.aggregates.append(agency)
        for i in range(self.extra_agencies):
            code = f"QNG-X{i:04d}"
            agency = Agency.register(
                code=code, name=f"Ủy ban nhân dân xã thử nghiệm {i}", level=AgencyLevel.COMMUNE,
                parent=None, aliases=[], established_on=None, member_levels=[],
                meta=self.meta_office, timestamp=ts)
            self._heads(agency)
            batch.aggregates.append(agency)
            self.leads.append(code)
        batch.events = sum(len(a.pending_events) for a in batch.aggregates)
        return batch

    def _person(self) -> str:
        return f"{self.rng.choice(PEOPLE)} {self.rng.choice(GIVEN)}"

    def _heads(self, agency: Agency) -> None:
        start = date(2019, 1, 1) + timedelta(days=self.rng.randint(0, 700))
        for _ in range(self.rng.randint(1, 3)):
            person = self._person()
            agency.appoint_head(person=person, position="Thủ trưởng", from_on=start,
                                acting=False, meta=self.meta_office, timestamp=self.clock())
            end = start + timedelta(days=self.rng.randint(400, 1500))
            if end > date(2025, 12, 31):
                break
            agency.record_head_left(person=person, to_on=end, meta=self.meta_office,
                                    timestamp=self.clock())
            start = end + timedelta(days=1)

    # -- directives and their tasks ----------------------------------------------------------

    def _number(self) -> str:
        while True:
            number = f"{self.rng.randint(1, 99999)}/{self.rng.choice(TYPES)}"
            if number not in self.numbers:
                self.numbers.add(number)
                return number

    def _phrase(self, issued: date) -> str:
        template = self.rng.choices(PHRASES, PHRASE_WEIGHTS)[0]
        due = issued + timedelta(days=self.rng.randint(10, 240))
        return template.format(
            y=issued.year, y1=issued.year + 1, d=f"{due.day}/{due.month}/{due.year}",
            m=f"{due.month}/{due.year}",
        )

    def _directive(self, at: datetime) -> list[Any]:
        """A directive with 1-50 tasks; the tasks' lives are scheduled for later."""
        rng = self.rng
        issued_on = local_date(at)
        count = min(50, max(1, int(rng.paretovariate(1.2))))
        if rng.random() < 0.05:
            count = rng.randint(30, 50)
        number = self._number()
        ordinals = [str(i) for i in range(1, count + 1)]
        directive = Directive.issue(
            number=number, doc_type="Công văn", issuer="QNG-UBND",
            assigning_office="QNG-VPUBND", signer=None, signing_capacity="KT. CHỦ TỊCH",
            issued_on=issued_on, title=f"Văn bản chỉ đạo số {number}", references=[],
            source_text_hash=None, task_ordinals=ordinals, meta=self.meta_office, timestamp=at)
        index = DirectiveNumber.register(number=number, meta=self.meta_office, timestamp=at)
        index.add(directive_id=directive.id, issuer="QNG-UBND", issued_on=issued_on,
                  meta=self.meta_office, timestamp=at)
        context = DeadlineContext(issued_on, issued_on.year + 4, RULEBOOK)
        created: list[Any] = [directive, index]
        for ordinal in ordinals:
            lead = rng.choice(self.leads)
            coordinating = sorted(
                c for c in {rng.choice(self.leads), rng.choice(self.groups)} if c != lead)
            task = Task.assign(
                directive_id=directive.id, directive_number=number, ordinal=ordinal,
                section=None, content=f"Nhiệm vụ {ordinal} của văn bản {number}",
                deliverable="Báo cáo kết quả", lead=lead, coordinating=coordinating,
                lead_text=None, coordinating_text=None,
                deadline=parse_deadline(self._phrase(issued_on), context),
                assigned_on=issued_on, assigning_office="QNG-VPUBND", meta=self.meta_office,
                timestamp=at)
            created.append(task)
            self._schedule(at, task, self._life(task))
        return created

    def _schedule(self, at: datetime, task: Task, life: Iterator[tuple[float, Any]]) -> None:
        try:
            delay_days, step = next(life)
        except StopIteration:
            return
        when = at + timedelta(days=delay_days)
        heapq.heappush(self.agenda, (when, next(self.sequence), task, step, life))

    def _life(self, task: Task) -> Iterator[tuple[float, Any]]:
        """The steps of a task's life: (days from the previous step, action(at))."""
        rng = self.rng
        lead = self._meta(task.lead)
        deadline = task.deadline
        if deadline.kind is DeadlineKind.STANDING:
            for _ in range(rng.randint(0, 3)):
                yield rng.uniform(5, 120), lambda at: self._progress(task, None, lead, at)
            return
        if deadline.is_dormant:
            if rng.random() < 0.5:
                return
            yield rng.uniform(10, 200), lambda at: task.trigger_deadline(
                due_on=local_date(at) + timedelta(days=rng.randint(30, 200)),
                basis="Hướng dẫn của Bộ", meta=self.meta_office, timestamp=at)
        # A recurring task is reported on period after period (an annual report every
        # year) for as long as the ledger runs, not only for its first periods: left
        # undone, every later period would pile up as overdue, as in no real agency.
        keys = ["once"] if deadline.kind is not DeadlineKind.RECURRING else [
            o.key for o in deadline.occurrences(task.assigned_on, self.horizon)]
        start = task.assigned_on
        for key in keys:
            occ_key = None if key == "once" else key
            due = task.occurrence(key).due_on
            span = max(5.0, (due - start).days)  # this period's length
            start = max(start, due)
            for _ in range(rng.randint(0, 4)):
                yield rng.uniform(1, span / 4), (
                    lambda at, k=occ_key: self._progress(task, k, lead, at))
            if rng.random() < 0.2:
                # Most requests come before the due date; some after it (cannot cure lateness).
                yield rng.uniform(1, span / 3), (
                    lambda at, k=occ_key, o=key: task.request_extension(
                        occurrence=k,
                        requested_due=max(task.occurrence(o).due_on, local_date(at))
                        + timedelta(days=rng.randint(15, 90)),
                        reason="Cần thêm thời gian", rulebook=RULEBOOK, meta=lead, timestamp=at))
                if rng.random() < 0.75:
                    yield rng.uniform(1, 10), (lambda at, k=occ_key: task.grant_extension(
                        occurrence=k, new_due=None, note=None, meta=self.meta_office,
                        timestamp=at))
                else:
                    yield rng.uniform(1, 10), (lambda at, k=occ_key: task.reject_extension(
                        occurrence=k, reason="Không có căn cứ", meta=self.meta_office,
                        timestamp=at))
            if rng.random() < 0.8:
                late = rng.random() < 0.25
                yield rng.uniform(span * (0.9 if late else 0.3), span * (1.3 if late else 0.95)), (
                    lambda at, k=occ_key: task.report_completion(
                        occurrence=k, completed_on=max(task.assigned_on, local_date(at)),
                        document=None, summary="Đã hoàn thành", meta=lead, timestamp=at))
                if rng.random() < 0.1:
                    yield rng.uniform(1, 7), (lambda at, k=occ_key: task.reject_completion(
                        occurrence=k, reason="Chưa đạt", meta=self.meta_office, timestamp=at))
                else:
                    yield rng.uniform(1, 7), (lambda at, k=occ_key: task.confirm_completion(
                        occurrence=k, note=None, meta=self.meta_office, timestamp=at))
        if rng.random() < 0.03:
            yield rng.uniform(1, 30), lambda at: task.cancel(
                effective_on=local_date(at), reason="Không còn phù hợp", meta=self.meta_office,
                timestamp=at)

    def _progress(self, task: Task, key: str | None, lead: dict[str, Any], at: datetime) -> None:
        task.report_progress(occurrence=key, reported_on=local_date(at),
                             percent=self.rng.randint(5, 95), summary="Đang triển khai",
                             reporter=task.lead, meta=lead, timestamp=at)

    # -- the stream --------------------------------------------------------------------------

    def batches(self, total_events: int, batch_events: int = 5000,
                years: float = 5.0) -> Iterator[Batch]:
        """Agencies first, then a simulation in ledger-time order: directives arrive at a
        steady rate, task steps happen when scheduled. Yields batches of about
        ``batch_events`` events; save each batch before asking for the next (aggregates
        that live on keep accumulating events)."""
        self.horizon = local_date(self.clock.now) + timedelta(days=round(years * 366))
        first = self.agencies()
        produced = first.events
        yield first
        pending: dict[Any, Any] = {}
        count = 0
        next_directive = self.clock()
        # About 30 events per directive (recurring tasks live every period): spread the whole
        # ledger over ``years``.
        directives_per_day = max(0.5, total_events / 30 / (years * 365))
        while produced < total_events:
            if self.agenda and self.agenda[0][0] <= next_directive:
                when, _, task, step, life = heapq.heappop(self.agenda)
                before = len(task.pending_events)
                try:
                    step(when)
                except DomainError:
                    pass  # a rule refused this step; a real user would have been refused too
                made = len(task.pending_events) - before
                if made:
                    pending[task.id] = task
                self._schedule(when, task, life)
            else:
                when = next_directive
                next_directive = when + timedelta(
                    days=self.rng.expovariate(directives_per_day))
                made = 0
                for aggregate in self._directive(when):
                    pending[aggregate.id] = aggregate
                    made += len(aggregate.pending_events)
            self.clock.now = max(self.clock.now, when)
            produced += made
            count += made
            if count >= batch_events:
                yield Batch(list(pending.values()), count)
                pending, count = {}, 0
        if pending:
            yield Batch(list(pending.values()), count)
