"""An agency's default page of obligations, once cached, is sent before FastAPI routes the
request (service/cached_reads.py): the same bytes and headers as FastAPI's own answer, and
everything it cannot answer without waiting still reaches FastAPI. On both stores."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from domain.application import Ledger
from service.app import create_app
from service.settings import Settings
from service.storage import ServiceTables
from service.tokens import TokenStore
from tests.behaviour.helpers import import_plan

URL = "/v1/agencies/QNG-STC/obligations"
# Headers that differ between any two responses, whoever sends them.
PER_RESPONSE = {"date", "x-request-id"}


@pytest.fixture
def served(store_url, clock, monkeypatch):
    """A client, tokens (the second never used yet), and the list of requests that reached
    FastAPI's router."""
    ledger = Ledger(store_url, clock=clock)
    import_plan(ledger)
    tables = ServiceTables(ledger)
    tables.create()
    store = TokenStore(tables)
    tokens = [store.create(role="agency", agency="QNG-STC")[0],
              store.create(role="office", agency="QNG-VPUBND")[0]]
    ledger.close()
    settings = Settings(database_url=store_url, embedded_worker=True, access_log=False,
                        read_wait_seconds=20, freshness_seconds=3600)
    app = create_app(settings)
    routed: list[str] = []
    router_class = type(app.router)
    route = router_class.__call__

    async def counted(self, scope, receive, send):
        if scope["type"] == "http":
            routed.append(scope["path"] + ("?" + scope["query_string"].decode()
                                           if scope.get("query_string") else ""))
        await route(self, scope, receive, send)

    monkeypatch.setattr(router_class, "__call__", counted)
    with TestClient(app) as client:
        # Folded (a write's position would be waited for the same way), then computed and
        # cached by FastAPI's path.
        assert client.get(URL, params={"min_position": 1},
                          headers=auth(tokens[0])).status_code == 200
        first = client.get(URL, headers=auth(tokens[0]))
        assert first.status_code == 200, first.text
        routed.clear()
        yield client, tokens, routed


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def comparable(response) -> tuple:
    headers = {k: v for k, v in response.headers.items() if k not in PER_RESPONSE}
    return response.status_code, headers, response.content


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_a_cached_default_page_is_sent_without_routing_as_fastapi_sends_it(served, encoding):
    client, tokens, routed = served
    headers = {**auth(tokens[0]), "Accept-Encoding": encoding}
    fast = client.get(URL, headers=headers)
    assert routed == []
    # The same query spelt with its default page goes through FastAPI, to the same answer
    # in the same cache.
    routed_answer = client.get(URL, params={"limit": 500}, headers=headers)
    assert routed == [f"{URL}?limit=500"]
    assert comparable(fast) == comparable(routed_answer)
    assert fast.headers.get("content-encoding") == (encoding if encoding == "gzip" else None)
    assert fast.json()["data"]["agency"]["code"] == "QNG-STC"
    assert fast.headers["x-request-id"]


def test_what_cannot_be_answered_without_waiting_reaches_fastapi(served):
    client, tokens, routed = served
    unused = tokens[1]  # valid, but not in this process's token cache yet
    assert client.get(URL, headers=auth(unused)).status_code == 200
    assert client.get(URL, headers=auth(unused)).status_code == 200  # now cached: not routed
    assert client.get(URL, headers={}).status_code == 401
    assert client.get(URL, headers={"Authorization": "Basic eDp5"}).status_code == 401
    assert client.get(URL, headers=auth("cdl_nope")).status_code == 401
    assert client.get(URL + "/", headers=auth(tokens[0]),
                      follow_redirects=False).status_code in (307, 404)
    other = "/v1/agencies/QNG-SXD/obligations"  # not cached yet
    assert client.get(other, headers=auth(tokens[0])).status_code == 200
    assert client.get(other, headers=auth(tokens[0])).status_code == 200  # now it is
    assert client.get(URL, params={"include_closed": "true"},
                      headers=auth(tokens[0])).status_code == 200
    assert client.head(URL, headers=auth(tokens[0])).status_code in (200, 405)
    # The unused token once, then the three refused, ...
    assert routed == [URL, URL, URL, URL, URL + "/", other, f"{URL}?include_closed=true", URL]


def test_requests_answered_before_routing_are_counted_under_their_route(served):
    client, tokens, routed = served
    before = _served_count(client)
    for _ in range(3):
        assert client.get(URL, headers=auth(tokens[0])).status_code == 200
    assert routed == ["/metrics"]
    assert _served_count(client) == before + 3


def _served_count(client) -> float:
    text = client.get("/metrics").text
    wanted = ('ledger_http_requests_total{method="GET",'
              'route="/v1/agencies/{code}/obligations",status="200"} ')
    line = next((row for row in text.splitlines() if row.startswith(wanted)), None)
    return 0.0 if line is None else float(line.split()[-1])
