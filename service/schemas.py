"""Request and response bodies (pydantic), with examples taken from the seed documents in
cli/samples/ (Quyết định 768/QĐ-UBND and Công văn 1864/UBND-TTHC of Quảng Ngãi).

Bodies are validated strictly: unknown fields are refused, text must be a JSON string in
Unicode NFC within a length limit, numbers must be JSON numbers, dates are ISO 8601
(``2024-05-31``). The domain checks meaning (a deadline phrase, a document number, who may
write); these schemas check shape, so a malformed request never reaches the Ledger.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from domain.agency import AgencyLevel
from domain.clock import plausible_day_problem

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _nfc(value: str) -> str:
    if not unicodedata.is_normalized("NFC", value):
        raise ValueError("text is not in Unicode NFC form (decomposed diacritics?); "
                         "normalise it to NFC before sending")
    return value


def _iso_date(value: Any) -> Any:
    if isinstance(value, date):
        return plausible_day(value)
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date (YYYY-MM-DD)")
    return plausible_day(date.fromisoformat(value))


def plausible_day(value: date | None) -> date | None:
    """The ledger's calendar (domain.clock): 0001-01-01 or 9999-12-31 are typing errors."""
    if value is not None and (problem := plausible_day_problem(value)):
        raise ValueError(problem)
    return value


def text(max_length: int, min_length: int = 1):
    return Annotated[
        str,
        StringConstraints(strict=True, min_length=min_length, max_length=max_length),
        AfterValidator(_nfc),
    ]


Text = text(20_000)
ShortText = text(300)
Title = text(2_000)
Reason = text(2_000)
Code = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")]
DocNumber = text(100)
Ordinal = text(40)
Occurrence = Annotated[
    str, StringConstraints(strict=True, pattern=r"^(once|\d{4}(-(Q[1-4]|\d{2}))?)$")
]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
# A day given as a query parameter (``on``, ``effective_on``).
QueryDay = Annotated[date | None, BeforeValidator(
    lambda value: None if value is None else _iso_date(value))]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceDocumentIn(Body):
    """The document a fact comes from (its number and date), recorded in the event's metadata."""

    number: DocNumber
    issued_on: IsoDate | None = None


class CommandBody(Body):
    source_document: SourceDocumentIn | None = Field(
        None, description="The document this command records (e.g. the agency's report)."
    )


# -- agencies --------------------------------------------------------------------------------


class RegisterAgencyIn(CommandBody):
    code: Code
    name: ShortText
    level: AgencyLevel
    parent: Code | None = None
    aliases: list[ShortText] = Field(default_factory=list, max_length=50)
    established_on: IsoDate | None = None
    member_levels: list[AgencyLevel] = Field(default_factory=list, max_length=10)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "code": "QNG-SKHCN", "name": "Sở Khoa học và Công nghệ", "level": "provincial",
        "parent": "QNG-UBND", "aliases": ["Sở KH&CN"],
    }]})


class RenameAgencyIn(CommandBody):
    name: ShortText
    effective_on: IsoDate

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Sở Khoa học, Công nghệ và Truyền thông", "effective_on": "2025-03-01"}]})


class MergeAgencyIn(CommandBody):
    successor: Code
    effective_on: IsoDate

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "successor": "QNG-SKHCN", "effective_on": "2025-03-01"}]})


class DissolveAgencyIn(CommandBody):
    effective_on: IsoDate


class AppointHeadIn(CommandBody):
    person: text(200)
    position: text(200)
    from_on: IsoDate
    acting: StrictBool = False

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "person": "Nguyễn Văn A", "position": "Giám đốc Sở Nội vụ", "from_on": "2021-01-01"}]})


class HeadLeftIn(CommandBody):
    person: text(200)
    to_on: IsoDate


# -- directives ------------------------------------------------------------------------------


class TaskIn(Body):
    ordinal: Ordinal
    content: Text
    lead: Code = Field(description="Agency code of the lead agency (cơ quan chủ trì).")
    deadline: text(500) = Field(description="The deadline phrase as written in the document.")
    coordinating: list[Code] = Field(default_factory=list, max_length=100)
    deliverable: text(2_000) | None = None
    section: text(500) | None = None


_TASK_EXAMPLE = {
    "ordinal": "2",
    "content": "Tổng hợp, báo cáo, kiến nghị UBND tỉnh (qua Sở Thông tin và Truyền thông) "
               "trường hợp hiệu năng, tính năng phần mềm VBDLIS không đáp ứng yêu cầu",
    "deliverable": "Báo cáo kiến nghị",
    "lead": "QNG-STNMT",
    "coordinating": ["QNG-STTTT"],
    "deadline": "trước ngày 31/5/2024",
}


class IssueDirectiveIn(CommandBody):
    number: DocNumber = Field(description="Số, ký hiệu: 1864/UBND-TTHC, 01/2024/QĐ-UBND.")
    issuer: Code
    issued_on: IsoDate
    title: Title
    assigning_office: Code | None = None
    signer: text(200) | None = None
    signing_capacity: text(100) | None = None
    references: list[DocNumber] = Field(default_factory=list, max_length=200)
    source_text: text(1_000_000) | None = Field(
        None, description="Full text of the document; only its SHA-256 is stored.")
    plan_last_year: StrictInt | None = Field(None, ge=1900, le=2200)
    tasks: list[TaskIn] = Field(min_length=1, max_length=1000)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "number": "1864/UBND-TTHC",
        "issuer": "QNG-UBND",
        "assigning_office": "QNG-VPUBND",
        "issued_on": "2024-04-10",
        "title": "Chấn chỉnh tình trạng chậm trễ trong phối hợp giải quyết TTHC lĩnh vực đất "
                 "đai của hộ gia đình, cá nhân trên địa bàn tỉnh",
        "signing_capacity": "TM. UBND",
        "references": ["6538/UBND-TTHC", "01/2024/QĐ-UBND"],
        "tasks": [_TASK_EXAMPLE],
    }]})


class AmendDirectiveIn(CommandBody):
    amended_by: DocNumber | None = None
    title: Title | None = None
    references: list[DocNumber] | None = Field(None, max_length=200)
    add_tasks: list[TaskIn] = Field(default_factory=list, max_length=1000)
    note: Reason | None = None
    plan_last_year: StrictInt | None = Field(None, ge=1900, le=2200)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "amended_by": "1900/UBND-TTHC", "note": "Bổ sung nhiệm vụ",
        "add_tasks": [{**_TASK_EXAMPLE, "ordinal": "5"}],
    }]})


class RevokeDirectiveIn(CommandBody):
    revoked_on: IsoDate
    reason: Reason
    revoked_by: DocNumber | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "revoked_on": "2024-06-01", "reason": "Thay thế bằng văn bản mới",
        "revoked_by": "2100/UBND-TTHC"}]})


# -- tasks -----------------------------------------------------------------------------------

_OCCURRENCE = Field(None, description="Which occurrence of a recurring task: '2022', '2022-Q1'; "
                                      "omit for a task that falls due once.")


class ProgressIn(CommandBody):
    summary: Text
    reported_on: IsoDate | None = None
    percent: StrictInt | None = Field(None, ge=0, le=100)
    occurrence: Occurrence | None = _OCCURRENCE
    obstacles: Text | None = Field(None, description="Khó khăn, vướng mắc (difficulties).")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "summary": "Đã góp ý dự thảo báo cáo kiến nghị", "percent": 40,
        "reported_on": "2024-05-10",
        "obstacles": "Phần mềm VBDLIS chưa kết nối được với Hệ thống thông tin giải quyết TTHC"}]})


class ExtensionRequestIn(CommandBody):
    requested_due: IsoDate
    reason: Reason
    occurrence: Occurrence | None = _OCCURRENCE

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "requested_due": "2024-06-30", "reason": "Chờ ý kiến các sở"}]})


class ExtensionGrantIn(CommandBody):
    new_due: IsoDate | None = Field(None, description="Default: the requested date.")
    note: Reason | None = None
    occurrence: Occurrence | None = _OCCURRENCE


class ExtensionRejectIn(CommandBody):
    reason: Reason
    occurrence: Occurrence | None = _OCCURRENCE


class CompletionReportIn(CommandBody):
    completed_on: IsoDate = Field(description="Date of the deliverable document.")
    summary: Text
    document: DocNumber | None = None
    occurrence: Occurrence | None = _OCCURRENCE

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "completed_on": "2024-05-28", "summary": "Đã có Báo cáo kiến nghị",
        "document": "67/BC-STNMT"}]})


class CompletionConfirmIn(CommandBody):
    note: Reason | None = None
    occurrence: Occurrence | None = _OCCURRENCE


class CompletionRejectIn(CommandBody):
    reason: Reason
    occurrence: Occurrence | None = _OCCURRENCE


class CancelIn(CommandBody):
    reason: Reason
    effective_on: IsoDate | None = None


class ReopenIn(CommandBody):
    reason: Reason
    occurrence: Occurrence | None = Field(
        None, description="Omit to reopen a cancelled task; name it to reopen a completion.")


class ReassignIn(CommandBody):
    lead: Code
    coordinating: list[Code] = Field(default_factory=list, max_length=100)
    reason: Reason
    effective_on: IsoDate | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "lead": "QNG-SKHCN", "coordinating": ["QNG-STNMT"],
        "reason": "Sáp nhập Sở Thông tin và Truyền thông"}]})


class TriggerDeadlineIn(CommandBody):
    due_on: IsoDate
    basis: Reason

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "due_on": "2024-12-31", "basis": "Hướng dẫn của Bộ Nội vụ tại Công văn 1234/BNV-CCHC"}]})


# -- responses -------------------------------------------------------------------------------


class CommandResult(BaseModel):
    """What a write stored. ``position`` is the global position of the last event written:
    pass it as ``min_position`` to a query to read your own write."""

    entity_type: str
    entity_id: str
    version: int
    position: int | None
    positions: list[int]
    location: str | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "entity_type": "Task", "entity_id": "0b8f3c1e-2f7c-5d6e-8a9b-0c1d2e3f4a5b",
        "version": 2, "position": 96, "positions": [96],
        "location": "/v1/tasks/0b8f3c1e-2f7c-5d6e-8a9b-0c1d2e3f4a5b"}]})


class HeadOut(BaseModel):
    person: str
    position: str
    from_on: date
    to_on: date | None
    acting: bool


class AgencyOut(BaseModel):
    id: str
    code: str
    name: str
    level: str
    parent: str | None
    aliases: list[str]
    status: str
    successor: str | None
    ended_on: date | None
    heads: list[HeadOut]
    version: int


class TaskRef(BaseModel):
    ordinal: str
    id: str


class DirectiveOut(BaseModel):
    id: str
    number: str
    type: str
    issuer: str
    assigning_office: str
    issued_on: date
    title: str
    signer: str | None
    signing_capacity: str | None
    references: list[str]
    amended_by: list[str]
    revoked_on: date | None
    version: int
    tasks: list[TaskRef]


class ObligationOut(BaseModel):
    occurrence: str | None
    status: str
    status_vi: str
    due_on: date | None
    original_due: date | None
    extended: bool
    pending_extension_to: date | None
    pending_completion_on: date | None
    completed_on: date | None


class TaskOut(BaseModel):
    id: str
    directive_id: str
    directive: str
    ordinal: str
    section: str | None
    content: str
    deliverable: str | None
    lead: str
    coordinating: list[str]
    assigned_on: date
    assigning_office: str
    deadline: dict[str, Any]
    cancelled_on: date | None
    version: int
    on: date
    obligations: list[ObligationOut]
    progress: list[dict[str, Any]]


class EventOut(BaseModel):
    position: int
    type: str
    entity_type: str
    entity_id: str
    version: int
    recorded_at: str
    meta: dict[str, Any]
    data: dict[str, Any]


class JournalPage(BaseModel):
    events: list[EventOut]
    after: int
    next_after: int = Field(description="Pass as `after` to read the next page.")
    head: int = Field(description="Position of the newest stored event.")


class TokenOut(BaseModel):
    token_id: str
    role: str
    agency: str | None
    label: str | None
    created_at: str
    created_by: str | None
    expires_at: str | None
    revoked_at: str | None


class QueryResult(BaseModel):
    """A read-model answer. ``query`` echoes what was asked (and on which time axis);
    ``data`` is the read model's answer as JSON."""

    query: dict[str, Any]
    data: Any
