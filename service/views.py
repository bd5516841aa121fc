"""Aggregates as JSON for reads (ISO 8601 dates, ids as strings)."""

from __future__ import annotations

from datetime import date
from typing import Any

from domain.agency import Agency
from domain.directive import Directive
from domain.ids import task_id
from domain.journal import plain
from domain.task import Task


def agency_view(agency: Agency) -> dict[str, Any]:
    return {
        "id": str(agency.id), "code": agency.code, "name": agency.name,
        "level": agency.level.value, "parent": agency.parent, "aliases": list(agency.aliases),
        "status": agency.status.value, "successor": agency.successor,
        "ended_on": agency.ended_on,
        "heads": [{"person": h.person, "position": h.position, "from_on": h.from_on,
                   "to_on": h.to_on, "acting": h.acting} for h in agency.heads],
        "version": agency.version,
    }


def directive_view(directive: Directive) -> dict[str, Any]:
    return {
        "id": str(directive.id), "number": directive.number, "type": directive.doc_type,
        "issuer": directive.issuer, "assigning_office": directive.assigning_office,
        "issued_on": directive.issued_on, "title": directive.title,
        "signer": directive.signer, "signing_capacity": directive.signing_capacity,
        "references": list(directive.references), "amended_by": list(directive.amended_by),
        "revoked_on": directive.revoked_on, "version": directive.version,
        "tasks": [{"ordinal": o, "id": str(task_id(directive.id, o))}
                  for o in directive.task_ordinals],
    }


def task_view(task: Task, on: date) -> dict[str, Any]:
    obligations = []
    for occ, status in task.obligations(on):
        pending = occ.pending_extension if occ else None
        obligations.append({
            "occurrence": occ.key if occ else None,
            "status": status.value, "status_vi": status.label_vi,
            "due_on": occ.due_on if occ else None,
            "original_due": occ.original_due if occ else None,
            "extended": occ.extended if occ else False,
            "pending_extension_to": pending.requested_due if pending else None,
            "pending_completion_on": occ.pending_completion_on if occ else None,
            "completed_on": occ.completed_on if occ else None,
        })
    return {
        "id": str(task.id), "directive_id": str(task.directive_id),
        "directive": task.directive_number, "ordinal": task.ordinal, "section": task.section,
        "content": task.content, "deliverable": task.deliverable, "lead": task.lead,
        "coordinating": list(task.coordinating), "assigned_on": task.assigned_on,
        "assigning_office": task.assigning_office, "deadline": plain(task.deadline),
        "cancelled_on": task.cancelled_on, "version": task.version, "on": on,
        "obligations": obligations, "progress": plain(task.progress),
    }
