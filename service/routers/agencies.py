"""Agencies (cơ quan, đơn vị) and their heads. Writes are admin work (decided in domain)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from domain.application import registered_agency_codes
from domain.reference import AgencyRecord
from service.commands import execute
from service.deps import IdempotencyKey, Reader, ServicesDep, Writer
from service.openapi import READ_ERRORS, WRITE_ERRORS
from service.schemas import (
    AgencyOut,
    AppointHeadIn,
    CommandResult,
    DissolveAgencyIn,
    HeadLeftIn,
    MergeAgencyIn,
    RegisterAgencyIn,
    RenameAgencyIn,
)
from service.views import agency_view

router = APIRouter(prefix="/v1/agencies", tags=["agencies"])
AgencyCode = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$",
                                 examples=["QNG-SNV"])]


def _location(code: str):
    return lambda _entity_id: f"/v1/agencies/{code}"


@router.get("", response_model=list[AgencyOut], responses=READ_ERRORS)
def list_agencies(svc: ServicesDep, _: Reader):
    """Every registered agency, in registration order."""
    return [agency_view(svc.ledger.agency(code)) for code in registered_agency_codes(svc.ledger)]


@router.get("/{code}", response_model=AgencyOut, responses=READ_ERRORS)
def get_agency(code: AgencyCode, svc: ServicesDep, _: Reader):
    return agency_view(svc.ledger.agency(code))


@router.post("", status_code=201, response_model=CommandResult, responses=WRITE_ERRORS)
def register_agency(request: Request, body: RegisterAgencyIn, svc: ServicesDep, token: Writer,
                    key: IdempotencyKey):
    """Register an agency (admin)."""
    record = AgencyRecord(code=body.code, name=body.name, level=body.level, parent=body.parent,
                          aliases=tuple(body.aliases), member_levels=tuple(body.member_levels))
    return execute(request, svc, token,
                   lambda ctx: svc.ledger.register_agency(ctx, record, body.established_on),
                   entity_type="Agency", location=_location(body.code), key=key,
                   source_document=body.source_document, status=201)


@router.post("/{code}/rename", response_model=CommandResult, responses=WRITE_ERRORS)
def rename_agency(request: Request, code: AgencyCode, body: RenameAgencyIn, svc: ServicesDep,
                  token: Writer, key: IdempotencyKey):
    return execute(request, svc, token,
                   lambda ctx: svc.ledger.rename_agency(ctx, code, body.name, body.effective_on),
                   entity_type="Agency", location=_location(code), key=key,
                   source_document=body.source_document)


@router.post("/{code}/merge", response_model=CommandResult, responses=WRITE_ERRORS)
def merge_agency(request: Request, code: AgencyCode, body: MergeAgencyIn, svc: ServicesDep,
                 token: Writer, key: IdempotencyKey):
    """Merge into a successor: from the effective date, open obligations pass to it."""
    return execute(request, svc, token,
                   lambda ctx: svc.ledger.merge_agency(ctx, code, body.successor,
                                                       body.effective_on),
                   entity_type="Agency", location=_location(code), key=key,
                   source_document=body.source_document)


@router.post("/{code}/dissolve", response_model=CommandResult, responses=WRITE_ERRORS)
def dissolve_agency(request: Request, code: AgencyCode, body: DissolveAgencyIn,
                    svc: ServicesDep, token: Writer, key: IdempotencyKey):
    return execute(request, svc, token,
                   lambda ctx: svc.ledger.dissolve_agency(ctx, code, body.effective_on),
                   entity_type="Agency", location=_location(code), key=key,
                   source_document=body.source_document)


@router.post("/{code}/heads", response_model=CommandResult, responses=WRITE_ERRORS)
def appoint_head(request: Request, code: AgencyCode, body: AppointHeadIn, svc: ServicesDep,
                 token: Writer, key: IdempotencyKey):
    """Record a head (người đứng đầu) or acting head taking office."""
    return execute(request, svc, token,
                   lambda ctx: svc.ledger.appoint_head(ctx, code, body.person, body.position,
                                                       body.from_on, acting=body.acting),
                   entity_type="Agency", location=_location(code), key=key,
                   source_document=body.source_document)


@router.post("/{code}/head-departures", response_model=CommandResult, responses=WRITE_ERRORS)
def record_head_left(request: Request, code: AgencyCode, body: HeadLeftIn, svc: ServicesDep,
                     token: Writer, key: IdempotencyKey):
    """Record a head leaving office (last day in office)."""
    return execute(request, svc, token,
                   lambda ctx: svc.ledger.record_head_left(ctx, code, body.person, body.to_on),
                   entity_type="Agency", location=_location(code), key=key,
                   source_document=body.source_document)
