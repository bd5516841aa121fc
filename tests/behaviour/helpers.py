"""Helpers shared by behaviour tests: sample documents and actors."""

from __future__ import annotations

from importlib import resources

from domain.actors import Actor, CommandContext, Role, system_context
from domain.plan_annex import parse_plan_annex

PLAN_FILE = "quang-ngai-768-QD-UBND-2021-ke-hoach-cchc.txt"
OPERATOR = system_context("test-operator")
OFFICE = CommandContext(Actor("token:vp", Role.OFFICE, "QNG-VPUBND"))
INSPECTOR = CommandContext(Actor("token:tt", Role.INSPECTOR))


def agency(code: str) -> CommandContext:
    return CommandContext(Actor(f"token:{code}", Role.AGENCY, code))


def plan_text() -> str:
    return resources.files("cli.samples").joinpath(PLAN_FILE).read_text("utf-8")


def import_plan(ledger, text: str | None = None):
    annex = parse_plan_annex(text or plan_text(), source=PLAN_FILE)
    receipt = ledger.issue_directive(OPERATOR, annex.spec,
                                     register_agencies=annex.reference.agencies)
    return annex, receipt


def stored_count(ledger) -> int:
    return ledger.recorder.max_notification_id() or 0
