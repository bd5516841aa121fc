"""The Ledger: one eventsourcing Application, one method per command.

Each command validates its input, loads the aggregates it needs, checks who may do it,
and saves every resulting event in one transaction, or raises a DomainError and stores
nothing. Events are stamped with the ledger clock (``recorded_at``) and the command's
metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from time import monotonic
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import JSONTranscoder, RecordConflictError

from domain.actors import CommandContext
from domain.agency import Agency, AgencyLevel, AgencyStatus
from domain.base import LedgerAggregate
from domain.clock import Clock, local_date, utc_now
from domain.deadlines import DeadlineContext, parse_deadline
from domain.directive import Directive
from domain.directive_index import DirectiveNumber, directive_number_id
from domain.document_number import DocumentNumber
from domain.errors import (
    ConcurrentWrite,
    DuplicateAgency,
    DuplicateDirective,
    InvalidTransition,
    NotPermitted,
    StaleVersion,
    UnknownAgency,
    UnknownDirective,
    UnknownTask,
    ValidationError,
)
from domain.ids import agency_id, directive_id, task_id
from domain.integrity import install_integrity
from domain.journal import JournalEntry, entry_from
from domain.persistence.checked_mapper import CheckedMapper
from domain.persistence.fast_json import FastJSONTranscoder
from domain.persistence.group_commit import GroupCommitter
from domain.persistence.schema_lock import schema_lock
from domain.persistence.transcodings import ledger_transcoder
from domain.persistence.url import StoreConfig, parse_store_url
from domain.reference import AgencyRecord
from domain.rulebook import RULEBOOK, Rulebook
from domain.rules import TaskAction, authorize_admin, authorize_office, authorize_task_write
from domain.specs import DirectiveSpec, TaskSpec
from domain.task import Task
from domain.text import clean_text, optional_text


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a successful command stored: the entity, its new version, and the global
    positions of the new events (for read-your-writes)."""

    entity_id: UUID
    version: int
    positions: tuple[int, ...]

    @property
    def position(self) -> int | None:
        return self.positions[-1] if self.positions else None


class Ledger(Application):
    name = "Ledger"

    def __init__(
        self,
        url: str | None = None,
        *,
        clock: Clock = utc_now,
        rulebook: Rulebook = RULEBOOK,
        env: dict[str, str] | None = None,
        group_commit: bool = False,
        agency_cache_seconds: float = 0.0,
    ) -> None:
        """``group_commit``: save concurrent commands in one transaction (for servers with
        many request threads). ``agency_cache_seconds``: how long an agency read for a
        permission check may be reused; agencies change rarely (a reorganisation takes
        effect at most this long after it is recorded). Both off by default."""
        self.store: StoreConfig = parse_store_url(url)
        self.clock = clock
        self.rulebook = rulebook
        # Callables run inside every insert transaction (see persistence.recorders).
        self.after_insert_hooks: list[Any] = []
        self._agency_ttl = agency_cache_seconds
        self._agency_cache: dict[str, tuple[float, Agency]] = {}
        # Aggregates are cached and fast-forwarded (one indexed query for newer events).
        cache = {"AGGREGATE_CACHE_MAXSIZE": "10000", "AGGREGATE_CACHE_FASTFORWARD": "y"}
        with schema_lock(self.store):  # two processes starting at once must not race on DDL
            super().__init__(env={**cache, **self.store.env, **(env or {})})
            # The hash chain (DESIGN §6): its tables, and a hook in every insert transaction.
            self.integrity = install_integrity(self)
        self._committer = (
            GroupCommitter(self.save, self.after_insert_hooks) if group_commit else None
        )

    def close(self) -> None:
        if getattr(self, "_committer", None) is not None:
            self._committer.close()
        super().close()

    def save(self, *objs: Any, **kwargs: Any) -> list[Any]:
        """The library's save, without its runtime Protocol checks for our own classes
        (``isinstance`` against a Protocol re-reads the protocol's attributes on every call
        in Python 3.11: a tenth of a bulk import went there)."""
        processing = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, LedgerAggregate):
                processing.events.extend(obj.collect_events())
                processing.aggregates[obj.id] = obj
            elif isinstance(obj, LedgerAggregate.Event):
                processing.events.append(obj)
            elif obj is not None:
                processing.collect_events(obj)
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings

    def construct_transcoder(self) -> JSONTranscoder:
        """The library's JSON format, written and read with orjson (the same bytes)."""
        return ledger_transcoder(FastJSONTranscoder)

    def construct_mapper(self) -> CheckedMapper:
        """The library's mapper, raising ``UnreadableEvent`` for a row it cannot read whole."""
        return self.factory.mapper(transcoder=self.construct_transcoder(),
                                   mapper_class=CheckedMapper)

    # -- plumbing ----------------------------------------------------------------------------

    def _save(self, ctx: CommandContext, *aggregates: Any, entity: Any,
              on_conflict: Exception | None = None) -> Receipt:
        """Save in one transaction. The command's own hooks (``ctx.after_insert``) run in
        it too and receive ``(tx, receipt)``: what this command wrote, positions included."""
        entity_id, version = entity.id, entity.version

        def with_receipt(hook: Any) -> Any:
            def run(tx: Any, positions: Sequence[int]) -> None:
                hook(tx, Receipt(entity_id, version, tuple(positions)))

            return run

        own_hooks = [with_receipt(h) for h in ctx.after_insert]
        try:
            if self._committer is not None:
                recordings = self._committer.save(aggregates, own_hooks)
            else:
                recordings = self.save(*aggregates,
                                       after_insert=[*self.after_insert_hooks, *own_hooks])
        except RecordConflictError:
            raise on_conflict or ConcurrentWrite(
                "another write to the same entity was saved first; reload and retry",
                field=None,
            ) from None
        for aggregate in aggregates:
            if isinstance(aggregate, Agency):
                self._agency_cache.pop(aggregate.code, None)
        return Receipt(entity_id, version, tuple(r.notification.id for r in recordings))

    def _stamp(self, ctx: CommandContext) -> dict[str, Any]:
        return {"meta": ctx.meta(), "timestamp": self.clock()}

    def _get(self, aggregate_id: UUID, error: Exception, version: int | None = None):
        try:
            return self.repository.get(aggregate_id, version=version,
                                       projector_func=_mutate_in_turn)
        except AggregateNotFoundError:
            raise error from None

    @staticmethod
    def _check_version(entity: Any, expected_version: int | None) -> None:
        if expected_version is not None and entity.version != expected_version:
            raise StaleVersion(
                f"expected version {expected_version} but the current version is "
                f"{entity.version}; reload before writing",
                field="If-Match",
            )

    # -- agencies ----------------------------------------------------------------------------

    def agency(self, code: str) -> Agency:
        """An agency for reading (permission checks, validation): may come from the short
        cache (``agency_cache_seconds``). Commands that change an agency load it afresh."""
        if self._agency_ttl > 0:
            hit = self._agency_cache.get(code)
            if hit is not None and hit[0] > monotonic():
                return hit[1]
        agency = self._agency_for_write(code)
        if self._agency_ttl > 0:
            self._agency_cache[code] = (monotonic() + self._agency_ttl, agency)
        return agency

    def _agency_for_write(self, code: str) -> Agency:
        return self._get(agency_id(code), UnknownAgency(f"unknown agency {code!r}",
                                                        field="agency"))

    def agency_exists(self, code: str) -> bool:
        if self._agency_ttl > 0:
            hit = self._agency_cache.get(code)
            if hit is not None and hit[0] > monotonic():
                return True
        return agency_id(code) in self.repository

    def _new_agency(self, ctx: CommandContext, record: AgencyRecord,
                    established_on: date | None, pending: Iterable[str] = ()) -> Agency:
        code = clean_text(record.code, "code", max_length=40)
        if not all(ch.isalnum() or ch in "-_." for ch in code) or not code.isascii():
            raise ValidationError(
                f"agency code {code!r} may only contain ASCII letters, digits, '-', '_', '.'",
                field="code",
            )
        if (record.parent is not None and record.parent not in pending
                and not self.agency_exists(record.parent)):
            raise UnknownAgency(f"unknown parent agency {record.parent!r}", field="parent")
        if record.member_levels and record.level is not AgencyLevel.GROUP:
            raise ValidationError("only a group has member levels", field="member_levels")
        return Agency.register(
            code=code,
            name=clean_text(record.name, "name", max_length=300),
            level=record.level,
            parent=record.parent,
            aliases=[clean_text(a, "aliases", max_length=300) for a in record.aliases],
            established_on=established_on,
            member_levels=list(record.member_levels),
            **self._stamp(ctx),
        )

    def register_agency(self, ctx: CommandContext, record: AgencyRecord,
                        established_on: date | None = None) -> Receipt:
        authorize_admin(ctx.actor)
        agency = self._new_agency(ctx, record, established_on)
        if self.agency_exists(agency.code):
            raise DuplicateAgency(f"agency {agency.code} is already registered", field="code")
        return self._save(ctx, agency, entity=agency, on_conflict=DuplicateAgency(
            f"agency {agency.code} is already registered", field="code"))

    def register_missing_agencies(self, ctx: CommandContext,
                                  records: Iterable[AgencyRecord]) -> list[Agency]:
        """Unsaved registrations for the records not yet in the ledger (parents first)."""
        authorize_admin(ctx.actor)
        pending: dict[str, Agency] = {}
        remaining = [r for r in records if not self.agency_exists(r.code)]
        while remaining:
            progressed = False
            for record in list(remaining):
                if record.parent is None or record.parent in pending or self.agency_exists(
                    record.parent
                ):
                    pending[record.code] = self._new_agency(ctx, record, None, pending)
                    remaining.remove(record)
                    progressed = True
            if not progressed:
                missing = ", ".join(sorted({r.parent for r in remaining if r.parent}))
                raise UnknownAgency(f"unknown parent agency {missing}", field="parent")
        return list(pending.values())

    def rename_agency(self, ctx: CommandContext, code: str, name: str,
                      effective_on: date) -> Receipt:
        authorize_admin(ctx.actor)
        agency = self._agency_for_write(code)
        agency.rename(name=clean_text(name, "name", max_length=300),
                      effective_on=effective_on, **self._stamp(ctx))
        return self._save(ctx, agency, entity=agency)

    def merge_agency(self, ctx: CommandContext, code: str, successor: str,
                     effective_on: date) -> Receipt:
        authorize_admin(ctx.actor)
        agency = self._agency_for_write(code)
        target = self.agency(successor)
        if target.status is not AgencyStatus.ACTIVE:
            raise InvalidTransition(f"successor {successor} is {target.status.value}",
                                    field="successor")
        agency.merge_into(successor=successor, effective_on=effective_on, **self._stamp(ctx))
        return self._save(ctx, agency, entity=agency)

    def dissolve_agency(self, ctx: CommandContext, code: str, effective_on: date) -> Receipt:
        authorize_admin(ctx.actor)
        agency = self._agency_for_write(code)
        agency.dissolve(effective_on=effective_on, **self._stamp(ctx))
        return self._save(ctx, agency, entity=agency)

    def appoint_head(self, ctx: CommandContext, code: str, person: str, position: str,
                     from_on: date, acting: bool = False) -> Receipt:
        authorize_admin(ctx.actor)
        agency = self._agency_for_write(code)
        agency.appoint_head(person=clean_text(person, "person", max_length=200),
                            position=clean_text(position, "position", max_length=200),
                            from_on=from_on, acting=acting, **self._stamp(ctx))
        return self._save(ctx, agency, entity=agency)

    def record_head_left(self, ctx: CommandContext, code: str, person: str,
                         to_on: date) -> Receipt:
        authorize_admin(ctx.actor)
        agency = self._agency_for_write(code)
        agency.record_head_left(person=clean_text(person, "person", max_length=200),
                                to_on=to_on, **self._stamp(ctx))
        return self._save(ctx, agency, entity=agency)

    def responsible_agency(self, code: str, on: date) -> str:
        """The agency answering for ``code``'s obligations on a day: after a merger that has
        taken effect, its successor (followed transitively)."""
        seen = set()
        while code not in seen:
            seen.add(code)
            agency = self.agency(code)
            if (agency.status is AgencyStatus.MERGED and agency.ended_on is not None
                    and agency.ended_on <= on and agency.successor):
                code = agency.successor
                continue
            return code
        raise InvalidTransition(f"agency merger cycle through {code}", field="agency")

    # -- directives --------------------------------------------------------------------------

    def directive(self, directive_uuid: UUID) -> Directive:
        return self._get(directive_uuid, UnknownDirective(
            f"unknown directive {directive_uuid}", field="directive"))

    def find_directives(self, number: str) -> list[Directive]:
        """Directives printed with this number (normally one)."""
        parsed = DocumentNumber.parse(number)
        try:
            index = self.repository.get(directive_number_id(str(parsed)))
        except AggregateNotFoundError:
            return []
        return [self.directive(entry[0]) for entry in index.entries]

    def find_directive(self, number: str, issuer: str | None = None) -> Directive:
        found = [d for d in self.find_directives(number) if issuer in (None, d.issuer)]
        if not found:
            raise UnknownDirective(f"no directive numbered {number}", field="number")
        if len(found) > 1:
            issuers = ", ".join(d.issuer for d in found)
            raise ValidationError(
                f"several directives are numbered {number} (issuers {issuers}); name the issuer",
                field="issuer",
            )
        return found[0]

    def _build_task(self, ctx: CommandContext, directive: Directive, spec: TaskSpec,
                    plan_last_year: int | None, known_agencies: set[str],
                    stamp: dict[str, Any]) -> Task:
        where = f"task {spec.ordinal or '?'}"
        ordinal = clean_text(spec.ordinal, f"{where}: ordinal", max_length=40)
        for code in (spec.lead, *spec.coordinating):
            if code not in known_agencies and not self.agency_exists(code):
                raise UnknownAgency(f"{where}: unknown agency {code!r}", field="lead")
        lead = self.agency(spec.lead) if spec.lead not in known_agencies else None
        if lead is not None and not lead.active_on(directive.issued_on):
            raise InvalidTransition(
                f"{where}: lead agency {spec.lead} is {lead.status.value} on "
                f"{directive.issued_on:%d/%m/%Y}",
                field="lead",
            )
        if spec.lead in spec.coordinating:
            raise ValidationError(f"{where}: the lead agency cannot also coordinate",
                                  field="coordinating")
        try:
            deadline = parse_deadline(
                spec.deadline,
                DeadlineContext(directive.issued_on, plan_last_year, self.rulebook),
            )
        except ValidationError as exc:
            raise type(exc)(f"{where}: {exc.message}", field="deadline") from None
        return Task.assign(
            directive_id=directive.id,
            directive_number=directive.number,
            ordinal=ordinal,
            section=optional_text(spec.section, f"{where}: section", max_length=500),
            content=clean_text(spec.content, f"{where}: content"),
            deliverable=optional_text(spec.deliverable, f"{where}: deliverable", max_length=2000),
            lead=spec.lead,
            coordinating=list(dict.fromkeys(spec.coordinating)),
            lead_text=optional_text(spec.lead_text, f"{where}: lead", max_length=2000),
            coordinating_text=optional_text(spec.coordinating_text, f"{where}: coordinating",
                                            max_length=2000),
            deadline=deadline,
            assigned_on=directive.issued_on,
            assigning_office=directive.assigning_office,
            **stamp,
        )

    def issue_directive(self, ctx: CommandContext, spec: DirectiveSpec, *,
                        register_agencies: Sequence[AgencyRecord] = ()) -> Receipt:
        """Record a directive with all its tasks (and, for imports, the reference agencies
        it names that the ledger does not know yet) in one transaction."""
        number = DocumentNumber.parse(spec.number)
        issuer = clean_text(spec.issuer, "issuer", max_length=40)
        office = clean_text(spec.assigning_office or issuer, "assigning_office", max_length=40)
        authorize_office(ctx.actor, assigning_office=office)
        # Registering reference agencies is admin work (imports); an office issuing a
        # directive that names only known agencies must not need the admin role.
        new_agencies = (self.register_missing_agencies(ctx, register_agencies)
                        if register_agencies else [])
        known = {a.code for a in new_agencies}
        for code, field in ((issuer, "issuer"), (office, "assigning_office")):
            if code not in known and not self.agency_exists(code):
                raise UnknownAgency(f"unknown agency {code!r}", field=field)
        if number.year is not None and number.year != spec.issued_on.year:
            raise ValidationError(
                f"document number {number} carries the year {number.year} but is dated "
                f"{spec.issued_on:%d/%m/%Y}",
                field="issued_on",
            )
        if spec.issued_on > local_date(self.clock()):
            raise ValidationError(
                f"issue date {spec.issued_on:%d/%m/%Y} is in the future", field="issued_on"
            )
        if not spec.tasks:
            raise ValidationError("a directive needs at least one task", field="tasks")
        ordinals = [t.ordinal for t in spec.tasks]
        duplicates = sorted({o for o in ordinals if ordinals.count(o) > 1})
        if duplicates:
            raise ValidationError(f"task ordinals repeat: {', '.join(duplicates)}",
                                  field="tasks")
        stamp = self._stamp(ctx)
        duplicate = DuplicateDirective(
            f"directive {number} of {issuer} ({spec.issued_on:%d/%m/%Y}) is already in the "
            "ledger; nothing was stored",
            field="number",
        )
        the_id = directive_id(issuer, spec.issued_on.year, str(number))
        if the_id in self.repository:
            raise duplicate
        source_hash = (
            hashlib.sha256(spec.source_text.encode("utf-8")).hexdigest()
            if spec.source_text else None
        )
        directive = Directive.issue(
            number=str(number),
            doc_type=number.document_type,
            issuer=issuer,
            assigning_office=office,
            signer=optional_text(spec.signer, "signer", max_length=200),
            signing_capacity=optional_text(spec.signing_capacity, "signing_capacity",
                                           max_length=100),
            issued_on=spec.issued_on,
            title=clean_text(spec.title, "title", max_length=2000),
            references=[clean_text(r, "references", max_length=300) for r in spec.references],
            source_text_hash=source_hash,
            task_ordinals=[clean_text(o, "ordinal", max_length=40) for o in ordinals],
            **stamp,
        )
        tasks = [
            self._build_task(ctx, directive, t, spec.plan_last_year, known, stamp)
            for t in spec.tasks
        ]
        index = self._index_entry(directive, stamp)
        return self._save(ctx, *new_agencies, directive, index, *tasks, entity=directive,
                          on_conflict=duplicate)

    def _index_entry(self, directive: Directive, stamp: dict[str, Any]) -> DirectiveNumber:
        try:
            index = self.repository.get(directive_number_id(directive.number))
        except AggregateNotFoundError:
            index = DirectiveNumber.register(number=directive.number, **stamp)
        index.add(directive_id=directive.id, issuer=directive.issuer,
                  issued_on=directive.issued_on, **stamp)
        return index

    def amend_directive(self, ctx: CommandContext, directive_uuid: UUID, *,
                        amended_by: str | None = None, title: str | None = None,
                        references: Sequence[str] | None = None,
                        add_tasks: Sequence[TaskSpec] = (), note: str | None = None,
                        plan_last_year: int | None = None,
                        expected_version: int | None = None) -> Receipt:
        directive = self.directive(directive_uuid)
        authorize_office(ctx.actor, assigning_office=directive.assigning_office)
        self._check_version(directive, expected_version)
        if amended_by is not None:
            amended_by = str(DocumentNumber.parse(amended_by))
        if title is None and references is None and not add_tasks and not note:
            raise ValidationError("an amendment must change something", field="title")
        stamp = self._stamp(ctx)
        directive.amend(
            amended_by=amended_by,
            title=clean_text(title, "title", max_length=2000) if title is not None else None,
            references=[clean_text(r, "references") for r in references]
            if references is not None else None,
            added_task_ordinals=[t.ordinal for t in add_tasks],
            note=optional_text(note, "note"),
            **stamp,
        )
        tasks = [self._build_task(ctx, directive, t, plan_last_year, set(), stamp)
                 for t in add_tasks]
        return self._save(ctx, directive, *tasks, entity=directive)

    def revoke_directive(self, ctx: CommandContext, directive_uuid: UUID, *, revoked_on: date,
                         reason: str, revoked_by: str | None = None,
                         expected_version: int | None = None) -> Receipt:
        """Revoke a directive and cancel its open tasks in the same transaction."""
        directive = self.directive(directive_uuid)
        authorize_office(ctx.actor, assigning_office=directive.assigning_office)
        self._check_version(directive, expected_version)
        reason = clean_text(reason, "reason", max_length=2000)
        stamp = self._stamp(ctx)
        directive.revoke(
            revoked_on=revoked_on,
            revoked_by=str(DocumentNumber.parse(revoked_by)) if revoked_by else None,
            reason=reason,
            **stamp,
        )
        tasks = []
        for ordinal in directive.task_ordinals:
            task = self.task(task_id(directive.id, ordinal))
            if task.is_open:
                task.cancel(effective_on=revoked_on,
                            reason=f"văn bản {directive.number} bị thu hồi: {reason}", **stamp)
                tasks.append(task)
        return self._save(ctx, directive, *tasks, entity=directive)

    # -- tasks -------------------------------------------------------------------------------

    def task(self, task_uuid: UUID, version: int | None = None) -> Task:
        return self._get(task_uuid, UnknownTask(f"unknown task {task_uuid}", field="task"),
                         version=version)

    def find_task(self, reference: str) -> Task:
        """A task by UUID or by '<directive number>#<ordinal>' (e.g. '768/QĐ-UBND#3.2')."""
        reference = reference.strip()
        if "#" in reference:
            number, _, ordinal = reference.rpartition("#")
            directive = self.find_directive(number)
            return self.task(task_id(directive.id, ordinal))
        try:
            return self.task(UUID(reference))
        except ValueError:
            raise ValidationError(
                f"{reference!r} is neither a task id nor '<number>#<ordinal>'", field="task"
            ) from None

    def _task_for_write(self, ctx: CommandContext, task_uuid: UUID, action: TaskAction,
                        expected_version: int | None) -> Task:
        task = self.task(task_uuid)
        today = local_date(self.clock())
        lead = self.responsible_agency(task.lead, today)
        lead_agency = self.agency(lead)
        actor = ctx.actor
        if actor.agency and self.agency_exists(actor.agency):
            own = self.agency(actor.agency)
            if not own.active_on(today) and own.ended_on is not None:
                successor = f"; its successor is {own.successor}" if own.successor else ""
                raise NotPermitted(
                    f"{actor.agency} is {own.status.value} since {own.ended_on:%d/%m/%Y} and "
                    f"can no longer write{successor}",
                    scope=f"agency:{actor.agency}",
                )
        # A group lead ("Các sở, ban, ngành") has no single voice: its members report
        # progress, and the assigning office records extensions and completions for it.
        if lead_agency.is_group and actor.agency and action is TaskAction.REPORT_PROGRESS:
            if actor.agency != lead and self.agency_exists(actor.agency) and \
                    lead_agency.includes(self.agency(actor.agency)):
                lead = actor.agency
        if lead_agency.is_group and action in (TaskAction.REQUEST_EXTENSION,
                                               TaskAction.REPORT_COMPLETION):
            action = TaskAction.DECIDE
        coordinating = [self.responsible_agency(c, today) for c in task.coordinating]
        if actor.agency and actor.agency not in coordinating and self.agency_exists(actor.agency):
            # Members of a coordinating group ("Các sở, ban, ngành") coordinate too.
            member = self.agency(actor.agency)
            if any(self.agency(c).includes(member) for c in coordinating):
                coordinating.append(actor.agency)
        authorize_task_write(
            actor, action, lead=lead, coordinating=coordinating,
            assigning_office=task.assigning_office,
        )
        self._check_version(task, expected_version)
        return task

    def report_progress(self, ctx: CommandContext, task_uuid: UUID, *, summary: str,
                        reported_on: date | None = None, percent: int | None = None,
                        occurrence: str | None = None, obstacles: str | None = None,
                        expected_version: int | None = None) -> Receipt:
        task = self._task_for_write(ctx, task_uuid, TaskAction.REPORT_PROGRESS,
                                    expected_version)
        stamp = self._stamp(ctx)
        task.report_progress(
            occurrence=occurrence,
            reported_on=reported_on or local_date(stamp["timestamp"]),
            percent=percent,
            summary=clean_text(summary, "summary"),
            reporter=ctx.actor.agency,
            obstacles=optional_text(obstacles, "obstacles"),
            **stamp,
        )
        return self._save(ctx, task, entity=task)

    def request_extension(self, ctx: CommandContext, task_uuid: UUID, *, requested_due: date,
                          reason: str, occurrence: str | None = None,
                          expected_version: int | None = None) -> Receipt:
        task = self._task_for_write(ctx, task_uuid, TaskAction.REQUEST_EXTENSION,
                                    expected_version)
        task.request_extension(occurrence=occurrence, requested_due=requested_due,
                               reason=clean_text(reason, "reason"), rulebook=self.rulebook,
                               **self._stamp(ctx))
        return self._save(ctx, task, entity=task)

    def grant_extension(self, ctx: CommandContext, task_uuid: UUID, *,
                        new_due: date | None = None, note: str | None = None,
                        occurrence: str | None = None,
                        expected_version: int | None = None) -> Receipt:
        task = self._task_for_write(ctx, task_uuid, TaskAction.DECIDE, expected_version)
        task.grant_extension(occurrence=occurrence, new_due=new_due,
                             note=optional_text(note, "note"), **self._stamp(ctx))
        return self._save(ctx, task, entity=task)

    def reject_extension(self, ctx: CommandContext, task_uuid: UUID, *, reason: str,
                         occurrence: str | None = None,
                         expected_version: int | None = None) -> Receipt:
        task = self._task_for_write(ctx, task_uuid, TaskAction.DECIDE, expected_version)
        task.reject_extension(occurrence=occurrence, reason=clean_text(reason, "reason"),
                              **self._stamp(ctx))
        return self._save(ctx, task, entity=task)

    def report_completion(self, ctx: CommandContext, task_uuid: UUID, *, completed_on: date,
                          summary: str, document: str | None = None,
                          occurrence: str | None = None,
                          expected_version: int | None = None) -> Receipt:
        task = self._task_for_write(ctx, task_uuid, TaskAction.REPORT_COMPLETION,
                                    expected_version)
        task.report_completion(
            occurrence=occurrence, completed_on=completed_on,
            document=str(DocumentNumber.parse(document)) if document else None,
            summary=clean_text(summary, "summary"), **self._stamp(ctx),
        )
        return self._save(ctx, task, entity=task)

    def confirm_completion(self, ctx: CommandContext, task_uuid: UUID, *,
                           note: str | None = None, occurrence: str | None = None,
                           expected_version: int | None = None) -> Receipt:
        task = self._task_for_write(ctx, task_uuid, TaskAction.DECIDE, expected_version)
        task.confirm_completion(occurrence=occurrence, note=optional_text(note, "note"),
                                **self._stamp(ctx))
        return self._save(ctx, task, entity=task)

    def reject_completion(self, ctx: CommandContext, task_uuid: UUID, *, reason: str,
                          occurrence: str | None = None,
                          expected_version: int | None = None) -> Receipt:
        task = self._task_for_write(ctx, task_uuid, TaskAction.DECIDE, expected_version)
        task.reject_completion(occurrence=occurrence, reason=clean_text(reason, "reason"),
                               **self._stamp(ctx))
        return self._save(ctx, task, entity=task)

    def cancel_task(self, ctx: CommandContext, task_uuid: UUID, *, reason: str,
                    effective_on: date | None = None,
                    expected_version: int | None = None) -> Receipt:
        task = self._task_for_write(ctx, task_uuid, TaskAction.DECIDE, expected_version)
        stamp = self._stamp(ctx)
        task.cancel(effective_on=effective_on or local_date(stamp["timestamp"]),
                    reason=clean_text(reason, "reason"), **stamp)
        return self._save(ctx, task, entity=task)

    def reopen_task(self, ctx: CommandContext, task_uuid: UUID, *, reason: str,
                    occurrence: str | None = None,
                    expected_version: int | None = None) -> Receipt:
        task = self._task_for_write(ctx, task_uuid, TaskAction.DECIDE, expected_version)
        task.reopen(occurrence=occurrence, reason=clean_text(reason, "reason"),
                    **self._stamp(ctx))
        return self._save(ctx, task, entity=task)

    def reassign_task(self, ctx: CommandContext, task_uuid: UUID, *, lead: str,
                      coordinating: Sequence[str] = (), reason: str,
                      effective_on: date | None = None,
                      expected_version: int | None = None) -> Receipt:
        task = self._task_for_write(ctx, task_uuid, TaskAction.DECIDE, expected_version)
        stamp = self._stamp(ctx)
        effective = effective_on or local_date(stamp["timestamp"])
        for code in (lead, *coordinating):
            agency = self.agency(code)
            if not agency.active_on(effective):
                raise InvalidTransition(f"agency {code} is {agency.status.value}",
                                        field="lead")
        if lead in coordinating:
            raise ValidationError("the lead agency cannot also coordinate",
                                  field="coordinating")
        task.reassign(lead=lead, coordinating=list(dict.fromkeys(coordinating)),
                      effective_on=effective, reason=clean_text(reason, "reason"), **stamp)
        return self._save(ctx, task, entity=task)

    def trigger_deadline(self, ctx: CommandContext, task_uuid: UUID, *, due_on: date,
                         basis: str, expected_version: int | None = None) -> Receipt:
        task = self._task_for_write(ctx, task_uuid, TaskAction.DECIDE, expected_version)
        task.trigger_deadline(due_on=due_on, basis=clean_text(basis, "basis"),
                              **self._stamp(ctx))
        return self._save(ctx, task, entity=task)



def read_journal(ledger: Ledger, after: int = 0, limit: int = 100) -> list[JournalEntry]:
    """Events with positions greater than ``after``, oldest first."""
    notifications = ledger.recorder.select_notifications(
        start=after, limit=limit, inclusive_of_start=False
    )
    return [entry_from(n, ledger.mapper) for n in notifications]


def registered_agency_codes(ledger: Ledger) -> list[str]:
    """Codes of every registered agency, in registration order (a scan of one event type;
    agencies number in the hundreds)."""
    from eventsourcing.utils import get_topic

    topic = get_topic(Agency.Registered)
    codes: list[str] = []
    start = 0
    while True:
        page = ledger.recorder.select_notifications(
            start=start, limit=1000, topics=[topic], inclusive_of_start=False
        )
        if not page:
            return codes
        codes.extend(entry_from(n, ledger.mapper).data["code"] for n in page)
        start = page[-1].id


def _mutate_in_turn(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's ``project_aggregate`` without its per-event ``assert isinstance(event,
    CanMutateProtocol)``: a runtime-checkable protocol is checked attribute by attribute, and
    that assert was a tenth of the server's time on HTTP writes (py-spy, GIL samples)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate
