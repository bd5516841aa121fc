"""A single directive with its tasks, as a JSON/YAML mapping (``ledger import directive``).

See cli/samples/quang-ngai-1864-UBND-TTHC-2024.yaml for the documented shape. Agencies may
be given by code ("QNG-STNMT") or, when a ``province`` reference list is named, by name as
written in the document ("Sở Tài nguyên và Môi trường").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from domain.clock import parse_date
from domain.errors import DomainError, ValidationError
from domain.reference import NameResolver, ReferenceList, load_reference
from domain.specs import DirectiveSpec, TaskSpec

_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_.-]*$")


class DirectiveFileError(ValidationError):
    code = "directive-file-invalid"

    def __init__(self, source: str, problems: list[str]) -> None:
        shown = "; ".join(problems[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        super().__init__(f"{source}: {shown}{more}", field="file")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class DirectiveFile:
    spec: DirectiveSpec
    reference: ReferenceList | None


def _date(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValidationError(f"{where}: expected a date (dd/mm/yyyy), got {value!r}")
    try:
        return parse_date(value)
    except ValueError as exc:
        raise ValidationError(f"{where}: {exc}") from None


def _text(data: dict[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ValidationError(f"{where}{key}: missing")
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValidationError(f"{where}{key}: expected text, got {type(value).__name__}")
    return value


def parse_directive_mapping(data: Any, *, source: str = "directive") -> DirectiveFile:
    if not isinstance(data, dict):
        raise DirectiveFileError(source, ["the file must hold one mapping (a directive)"])
    problems: list[str] = []
    reference = None
    resolver = None
    province = data.get("province")
    if province is not None:
        try:
            reference = load_reference(str(province))
            resolver = NameResolver.from_records(reference.agencies)
        except DomainError as exc:
            problems.append(f"province: {exc.message}")

    def agency(value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(f"{where}: expected an agency code or name")
        value = value.strip()
        if _CODE.match(value):
            return value
        if resolver is None:
            raise ValidationError(
                f"{where}: {value!r} is not an agency code; name a 'province' to use names"
            )
        try:
            return resolver.resolve_one(value, field_name=where)
        except DomainError as exc:
            raise ValidationError(exc.message) from None

    fields: dict[str, Any] = {}
    try:
        fields["number"] = _text(data, "number", "")
        fields["title"] = _text(data, "title", "")
        fields["issued_on"] = _date(data.get("issued_on"), "issued_on")
    except ValidationError as exc:
        problems.append(exc.message)
    for key in ("issuer", "assigning_office"):
        if data.get(key) is not None:
            try:
                fields[key] = agency(data[key], key)
            except ValidationError as exc:
                problems.append(exc.message)
    if "issuer" not in fields and reference is not None:
        fields["issuer"] = reference.issuer
        fields.setdefault("assigning_office", reference.assigning_office)
    if "issuer" not in fields:
        problems.append("issuer: missing (give an agency code, or a province)")
    for key in ("signer", "signing_capacity"):
        try:
            fields[key] = _text(data, key, "", required=False)
        except ValidationError as exc:
            problems.append(exc.message)
    references = data.get("references") or []
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        problems.append("references: expected a list of document numbers")
        references = []
    if data.get("plan_last_year") is not None and not isinstance(data["plan_last_year"], int):
        problems.append("plan_last_year: expected a year")

    tasks: list[TaskSpec] = []
    raw_tasks = data.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        problems.append("tasks: expected a non-empty list")
        raw_tasks = []
    for i, raw in enumerate(raw_tasks, 1):
        where = f"tasks[{i}]."
        if not isinstance(raw, dict):
            problems.append(f"tasks[{i}]: expected a mapping")
            continue
        try:
            coordinating = raw.get("coordinating") or []
            if isinstance(coordinating, str):
                coordinating = [coordinating]
            if not isinstance(coordinating, list):
                raise ValidationError(f"{where}coordinating: expected a list")
            lead_value = raw.get("lead")
            tasks.append(TaskSpec(
                ordinal=_text(raw, "ordinal", where) or "",
                content=_text(raw, "content", where) or "",
                lead=agency(lead_value, f"{where}lead"),
                deadline=_text(raw, "deadline", where) or "",
                coordinating=tuple(
                    agency(c, f"{where}coordinating[{j}]") for j, c in enumerate(coordinating, 1)
                ),
                deliverable=_text(raw, "deliverable", where, required=False),
                section=_text(raw, "section", where, required=False),
                lead_text=lead_value if lead_value and not _CODE.match(lead_value) else None,
                coordinating_text="; ".join(c for c in coordinating if isinstance(c, str))
                if any(isinstance(c, str) and not _CODE.match(c) for c in coordinating)
                else None,
            ))
        except ValidationError as exc:
            problems.append(exc.message)
    unknown = set(data) - {
        "number", "title", "issued_on", "issuer", "assigning_office", "signer",
        "signing_capacity", "references", "plan_last_year", "province", "tasks",
    }
    if unknown:
        problems.append(f"unknown field(s): {', '.join(sorted(unknown))}")
    if problems:
        raise DirectiveFileError(source, problems)
    spec = DirectiveSpec(
        references=tuple(references), plan_last_year=data.get("plan_last_year"),
        tasks=tuple(tasks), **fields,
    )
    return DirectiveFile(spec=spec, reference=reference)
