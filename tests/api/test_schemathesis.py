"""Property-based fuzzing of the whole OpenAPI schema (schemathesis): whatever the body,
parameters and headers, the service answers 4xx problem+json, never 5xx.

Deterministic (hypothesis ``derandomize``) and modest (``max_examples``) to keep CI time
low; ``LEDGER_FUZZ_EXAMPLES=1000`` (cases per operation) is the long mode (run with ``-s``
to see how many cases were sent). Requests go in-process (ASGI) to an app over a SQLite
ledger holding the plan
768/QĐ-UBND; some cases get the ids of real entities so that generated bodies reach the
domain instead of stopping at 404.
"""

from __future__ import annotations

import itertools
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from domain.application import Ledger
from domain.ids import task_id
from service.app import create_app
from service.settings import Settings
from tests.api.conftest import FakeReadModels
from tests.behaviour.helpers import import_plan
from tests.conftest import FakeClock

_state: dict = {}
# Cases per operation: modest in CI, thousands in the long mode (docs/reliability.md).
EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "0") or 0) or 25


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/ledger.db"
    ledger = Ledger(url, clock=FakeClock("2022-03-01 09:00"))
    import_plan(ledger)
    settings_ = Settings(database_url=url, feed_poll_seconds=0.01, feed_max_seconds=0.05,
                         read_wait_seconds=0.01, access_log=False)
    models = FakeReadModels()
    models.position = 2**62  # caught up: "behind" is a documented 503, not a failure
    app = create_app(settings_, ledger=ledger, read_models=models)
    from service.storage import ServiceTables
    from service.tokens import TokenStore

    tables = ServiceTables(ledger)
    tables.create()
    store = TokenStore(tables)
    plan = ledger.find_directive("768/QĐ-UBND")
    _state.update(
        app=app,
        admin=store.create(role="admin")[0],
        office=store.create(role="office", agency="QNG-VPUBND")[0],
        lead=store.create(role="agency", agency="QNG-STC")[0],
        ids={"task_id": str(task_id(plan.id, "6.9")), "directive_id": str(plan.id),
             "code": "QNG-STC", "entity_id": str(task_id(plan.id, "6.9"))},
    )
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    print(f"\nschemathesis: {_state.get('calls', 0)} cases sent, none answered 5xx")
    ledger.close()


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every documented operation; building the schema needs no store."""
    spec = create_app(Settings(database_url="sqlite:///:memory:", access_log=False)).openapi()
    return [(method.upper(), path) for path, methods in spec["paths"].items()
            for method in methods]


def _token_for(method: str, path: str, n: int) -> str:
    if (path.startswith("/v1/agencies") and method == "POST") or path.startswith("/v1/tokens"):
        return _state["admin"]
    if "/progress-reports" in path or "/extension-requests" in path or \
            "/completion-reports" in path:
        return _state["lead"]
    return _state["office"] if n % 4 else _state["lead"]


def _strategy(operation):
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    try:
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    except Exception:  # an operation with nothing to negate
        pass
    return st.one_of(*strategies)


@pytest.mark.parametrize(("method", "path"), _operations())
def test_no_input_makes_the_service_fail(fuzzed, method, path):
    operation = fuzzed[path][method]
    counter = itertools.count()

    @given(case=_strategy(operation))
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        n = next(counter)
        if case.path_parameters and n % 2 == 0:
            for name, value in _state["ids"].items():
                if name in case.path_parameters:
                    case.path_parameters[name] = value
            if "entity_type" in case.path_parameters:
                case.path_parameters["entity_type"] = "task"
        headers = dict(case.headers or {})
        if "Authorization" not in headers or n % 5:
            headers["Authorization"] = f"Bearer {_token_for(method, path, n)}"
        case.headers = headers
        _state["calls"] = _state.get("calls", 0) + 1
        response = case.call()
        assert response.status_code < 500, (
            f"{method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
        )
        if response.status_code >= 400:
            content_type = response.headers["content-type"]
            content_type = content_type[0] if isinstance(content_type, list) else content_type
            assert content_type.startswith("application/problem+json"), content_type

    check()
