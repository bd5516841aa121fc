"""Fixtures for the HTTP API: an app over a ledger holding the plan 768/QĐ-UBND, one token
per role, and a stand-in for the projections' read models (not on this branch yet)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from domain.application import Ledger
from domain.ids import task_id
from service.app import create_app
from service.settings import Settings
from tests.behaviour.helpers import import_plan

OFFICE_AGENCY = "QNG-VPUBND"
LEAD = "QNG-STC"  # leads 6.9 ("Quý IV năm 2021", due 31/12/2021)
COORDINATOR = "QNG-STP"  # coordinates 6.9
OTHER = "QNG-SYT"  # neither leads nor coordinates 6.9
ROLES = ("admin", "office", "lead", "coordinator", "other", "inspector")


class FakeReadModels:
    """The shape of projections.queries.ReadModels; answers echo what was asked, and
    ``position`` says how far the 'projections' have folded."""

    def __init__(self) -> None:
        self.position = 0
        self.calls: list[tuple[str, tuple, dict]] = []

    def obligations(self, agency, *, as_of=None, effective_on=None, include_groups=True,
                    include_closed=False, limit=None, offset=0):
        self.calls.append(("obligations", (agency,), {"as_of": as_of,
                                                      "effective_on": effective_on,
                                                      "limit": limit, "offset": offset}))
        return [{"agency": agency, "task": "768/QĐ-UBND#6.9", "status": "overdue",
                 "due_on": effective_on}]

    def obligation_counts(self, *, as_of=None, effective_on=None):
        self.calls.append(("obligation_counts", (), {"as_of": as_of,
                                                     "effective_on": effective_on}))
        return {"effective_on": effective_on, "agencies": []}

    def accountability(self, period, agency=None, as_of=None):
        self.calls.append(("accountability", (period,), {"agency": agency, "as_of": as_of}))
        return {"period": period, "heads": []}

    def history(self, entity_type, entity_id, as_of=None):
        self.calls.append(("history", (entity_type, entity_id), {"as_of": as_of}))
        return [{"entity_type": entity_type, "entity_id": entity_id}]

    def status(self):
        return {"obligations": {"position": self.position}}

    def wait_for(self, position, timeout):
        return self.position >= position


@dataclass
class Api:
    client: TestClient
    ledger: Ledger
    app: Any
    plan: Any
    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, str] = field(default_factory=dict)
    read_models: FakeReadModels | None = None

    @property
    def svc(self):
        return self.app.state.services

    def auth(self, role: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}", **extra}

    def task(self, ordinal: str) -> str:
        return str(task_id(self.plan.id, ordinal))

    def head(self) -> int:
        return self.ledger.recorder.max_notification_id() or 0

    def post(self, role: str, path: str, body: Any, **headers: str):
        return self.client.post(path, json=body, headers=self.auth(role, **headers))

    def get(self, role: str, path: str, **kwargs):
        return self.client.get(path, headers=self.auth(role), **kwargs)

    def idempotency_rows(self) -> int:
        with self.svc.tables.transaction(commit=False) as tx:
            tx.execute(f"SELECT COUNT(*) FROM {self.svc.tables.idempotency}")
            return int(tx.fetchone()[0])


def make_api(url: str, clock, settings: Settings | None = None, **app_kwargs) -> Api:
    ledger = Ledger(url, clock=clock)
    import_plan(ledger)
    models = app_kwargs.pop("read_models", FakeReadModels())
    settings = settings or Settings(database_url=url, feed_poll_seconds=0.01,
                                    feed_max_seconds=0.2, read_wait_seconds=0.01,
                                    access_log=False)
    app = create_app(settings, ledger=ledger, read_models=models, **app_kwargs)
    client = TestClient(app)
    client.__enter__()
    api = Api(client=client, ledger=ledger, app=app,
              plan=ledger.find_directive("768/QĐ-UBND"), read_models=models)
    store = api.svc.tokens
    for role, spec in {
        "admin": ("admin", None), "office": ("office", OFFICE_AGENCY),
        "lead": ("agency", LEAD), "coordinator": ("agency", COORDINATOR),
        "other": ("agency", OTHER), "inspector": ("inspector", None),
    }.items():
        secret, info = store.create(role=spec[0], agency=spec[1], label=role)
        api.tokens[role] = secret
        api.token_ids[role] = info.token_id
    return api


def close_api(api: Api) -> None:
    api.client.__exit__(None, None, None)
    api.ledger.close()


@pytest.fixture
def api(store_url, clock):
    """On both stores."""
    the_api = make_api(store_url, clock)
    try:
        yield the_api
    finally:
        close_api(the_api)


@pytest.fixture
def sqlite_api(tmp_path, clock):
    """For tests where the store does not matter (role matrix, validation)."""
    the_api = make_api(f"sqlite:///{tmp_path}/api.db", clock)
    try:
        yield the_api
    finally:
        close_api(the_api)


def assert_problem(response, status: int, code: str, *, field: str | None = None,
                   scope: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"urn:chidao-ledger:problem:{code}", body
    assert body["status"] == status and body["code"] == code
    assert body["detail"]
    if field is not None:
        assert body.get("field") == field, body
    if scope is not None:
        assert body.get("scope") == scope, body
    return body
