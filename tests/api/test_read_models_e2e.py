"""Writes over HTTP, then reads of the real read models with read-your-writes, on both
stores, with the projection worker running inside the API process (--with-worker)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from domain.application import Ledger
from domain.clock import local_date
from service.app import create_app
from service.read_models import AnswerCache
from service.settings import Settings
from service.shared_answers import SharedAnswers
from service.storage import ServiceTables
from service.tokens import TokenStore
from tests.behaviour.helpers import import_plan


@pytest.fixture
def served(store_url, clock):
    yield from _serve(store_url, clock)


def _serve(store_url, clock, **settings):
    ledger = Ledger(store_url, clock=clock)
    import_plan(ledger)
    tables = ServiceTables(ledger)
    tables.create()
    tokens = TokenStore(tables)
    lead = tokens.create(role="agency", agency="QNG-STC")[0]
    office = tokens.create(role="office", agency="QNG-VPUBND")[0]
    ledger.close()
    settings = Settings(database_url=store_url, embedded_worker=True, access_log=False,
                        read_wait_seconds=20, **settings)
    with TestClient(create_app(settings)) as client:
        yield client, {"lead": lead, "office": office}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def plan_task(client, headers, ordinal: str) -> dict:
    """The task of the imported plan (768/QĐ-UBND) with this ordinal, as the API shows it."""
    [directive] = client.get("/v1/directives", params={"number": "768/QĐ-UBND"},
                             headers=headers).json()
    return next(t for t in client.get(f"/v1/directives/{directive['id']}/tasks",
                                      headers=headers).json() if t["ordinal"] == ordinal)


def test_a_write_is_visible_in_obligations_and_history_at_its_position(served):
    client, tokens = served
    task = plan_task(client, auth(tokens["lead"]), "6.9")
    written = client.post(f"/v1/tasks/{task['id']}/extension-requests",
                          json={"requested_due": "2022-03-31", "reason": "Chờ ý kiến các sở"},
                          headers=auth(tokens["lead"]))
    assert written.status_code == 200, written.text
    position = written.json()["position"]

    owed = client.get("/v1/agencies/QNG-STC/obligations",
                      params={"min_position": position, "effective_on": "2021-11-01"},
                      headers=auth(tokens["office"]))
    assert owed.status_code == 200, owed.text
    data = owed.json()["data"]
    assert data["as_of"]["position"] >= position
    rows = [o for o in data["obligations"] if o["ordinal"] == "6.9"]
    assert rows and rows[0]["extensions"]["pending_due"] == "2022-03-31"

    history = client.get(f"/v1/history/task/{task['id']}", params={"min_position": position},
                         headers=auth(tokens["office"]))
    assert history.status_code == 200, history.text
    events = history.json()["data"]["events"]
    assert events[-1]["type"] == "Task.ExtensionRequested"
    assert events[-1]["position"] == position

    account = client.get("/v1/accountability", params={"period": "2021", "agency": "QNG-STC",
                                                        "min_position": position},
                         headers=auth(tokens["office"]))
    assert account.status_code == 200, account.text
    month = client.get("/v1/accountability", params={"period": "2021-05"},
                       headers=auth(tokens["office"]))
    assert month.status_code == 422


def test_obligations_are_direct_by_default_with_groups_and_pages_on_request(served):
    client, tokens = served
    headers = auth(tokens["office"])
    direct = client.get("/v1/agencies/QNG-STC/obligations",
                        params={"effective_on": "2021-11-01", "min_position": 1},
                        headers=headers).json()["data"]
    roles = {o["role"] for o in direct["obligations"]}
    assert roles <= {"lead", "coordinating"} and "lead" in roles
    grouped = client.get("/v1/agencies/QNG-STC/obligations",
                         params={"effective_on": "2021-11-01", "include_groups": "true"},
                         headers=headers).json()["data"]
    assert any(o["role"].startswith("group_") for o in grouped["obligations"])
    assert grouped["page"]["total"] > direct["page"]["total"]
    page = client.get("/v1/agencies/QNG-STC/obligations",
                      params={"effective_on": "2021-11-01", "include_groups": "true",
                              "limit": 3, "offset": 2}, headers=headers).json()["data"]
    assert page["obligations"] == grouped["obligations"][2:5]
    assert page["page"] == {"offset": 2, "limit": 3, "total": grouped["page"]["total"]}


def test_obligation_counts_give_every_agency_and_follow_a_write(served):
    """The province's overview: a cancellation moves one obligation of its lead from the
    status it had to cancelled, and no other agency's counts change."""
    client, tokens = served
    office = auth(tokens["office"])
    day = {"effective_on": "2021-11-01"}

    def counts(**params):
        answer = client.get("/v1/obligation-counts", params={**day, **params}, headers=office)
        assert answer.status_code == 200, answer.text
        assert answer.json()["query"] == day
        return {a["agency"]: a["counts"] for a in answer.json()["data"]["agencies"]}

    head = client.get("/v1/events", params={"limit": 1}, headers=office).json()["head"]
    before = counts(min_position=head)  # the imported plan folded
    owed = client.get("/v1/agencies/QNG-STC/obligations", params=day, headers=office).json()
    (was,) = [o["status"] for o in owed["data"]["obligations"]
              if o["ordinal"] == "6.9" and o["role"] == "lead"]
    task = plan_task(client, office, "6.9")
    written = client.post(f"/v1/tasks/{task['id']}/cancellation",
                          json={"reason": "Không còn phù hợp", "effective_on": "2021-10-01"},
                          headers=office)
    assert written.status_code == 200, written.text

    after = counts(min_position=written.json()["position"])
    expected = dict(before["QNG-STC"])
    expected[was] -= 1
    expected["cancelled"] = expected.get("cancelled", 0) + 1
    assert after["QNG-STC"] == {k: v for k, v in expected.items() if v}
    assert {k: v for k, v in after.items() if k != "QNG-STC"} == {
        k: v for k, v in before.items() if k != "QNG-STC"}
    for bad in ({"effective_on": "31/12/2021"}, {"as_of": "hôm qua"}):
        refused = client.get("/v1/obligation-counts", params=bad, headers=office)
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"


@pytest.fixture
def served_overview(store_url, clock):
    # freshness 0: a query outside the overview window sees every event folded before it
    yield from _serve(store_url, clock, overview_seconds=3600, freshness_seconds=0)


def test_the_counts_are_sent_again_for_a_while_unless_a_write_is_waited_for(served_overview):
    """Within LEDGER_API_OVERVIEW_SECONDS the counts last computed are sent again though an
    event has been folded since (their position says so); ``min_position`` gets counts
    that reach it."""
    client, tokens = served_overview
    office = auth(tokens["office"])
    head, first = _counts_at_head(client, office)
    position = _cancel_one_task(client, tokens, "1.1")
    again = client.get("/v1/obligation-counts", headers=office).json()["data"]
    assert again == first and again["as_of"]["position"] == head < position
    fresh = client.get("/v1/obligation-counts", params={"min_position": position},
                       headers=office).json()["data"]
    assert fresh["as_of"]["position"] >= position and fresh["agencies"] != first["agencies"]
    assert client.get("/v1/obligation-counts", headers=office).json()["data"] == fresh


def test_an_overview_past_its_window_is_sent_while_it_is_computed_again(served_overview):
    """Past LEDGER_API_OVERVIEW_SECONDS the last counts are still sent at once, and
    computed again on a thread meanwhile: the next request gets the new ones. Past twice
    the window a request waits for counts that are current."""
    client, tokens = served_overview
    office = auth(tokens["office"])
    now = [0.0]
    services = client.app.state.services
    services.answers = AnswerCache(clock=lambda: now[0])
    services.shared_answers = SharedAnswers(services.tables, clock=lambda: now[0])
    window = services.settings.overview_seconds

    def counts(**params):
        answer = client.get("/v1/obligation-counts", params=params, headers=office)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]

    head = client.get("/v1/events", params={"limit": 1}, headers=office).json()["head"]
    first = counts(min_position=head)
    position = _cancel_one_task(client, tokens, "1.1")
    now[0] = window + 1  # due
    assert counts() == first  # at once, the answer it had
    for _ in range(500):  # computed on a thread meanwhile
        latest = counts()
        if latest["as_of"]["position"] >= position:
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the overview was never computed again")
    assert latest["agencies"] != first["agencies"]
    position = _cancel_one_task(client, tokens, "1.2")
    now[0] += 2 * window  # too old to be sent: this request computes
    assert counts()["as_of"]["position"] >= position


def test_server_processes_share_an_overview(served_overview, store_url):
    """A second server process on the same ledger sends the counts the first computed,
    while they are younger than the window, though an event has been folded since: the
    overview is computed once per window for all processes, not once per process. A
    caller waiting for its write gets counts computed for it, which the first then sends."""
    client, tokens = served_overview
    office = auth(tokens["office"])
    head, first = _counts_at_head(client, office)
    position = _cancel_one_task(client, tokens, "1.1")
    with _another_process(store_url, overview_seconds=3600) as (other, computed):
        sent = other.get("/v1/obligation-counts", headers=office).json()["data"]
        assert sent == first and sent["as_of"]["position"] == head < position
        assert computed == []
        fresh = other.get("/v1/obligation-counts", params={"min_position": position},
                          headers=office).json()["data"]
        assert fresh["as_of"]["position"] >= position and len(computed) == 1
    client.app.state.services.answers = AnswerCache()  # the first process restarted
    assert client.get("/v1/obligation-counts", headers=office).json()["data"] == fresh


def test_a_shared_overview_s_window_stretches_with_its_computation(served_overview,
                                                                  store_url):
    """Counts whose computation took 10 s are sent again for three times that, whatever the
    window (5 s here): one that takes as long as the window is not computed without pause.
    Counts that took 1 s are computed again past the window."""
    client, tokens = served_overview
    office = auth(tokens["office"])
    _counts_at_head(client, office)
    shared = client.app.state.services.shared_answers
    key = ("obligation_counts", None, local_date(client.app.state.services.ledger.clock()))
    published = shared.fetch(key)  # (the key the router gives the counts of today)
    _cancel_one_task(client, tokens, "1.1")
    for took, computations in ((10.0, 0), (1.0, 1)):
        shared.publish(key, published.token, published.answer, took=took)
        with _another_process(store_url, overview_seconds=5, later=20) as (other, computed):
            sent = other.get("/v1/obligation-counts", headers=office).json()["data"]
            assert len(computed) == computations
            reached = sent["as_of"]["position"]
            assert (reached == published.position) == (computations == 0)


def test_a_shared_overview_s_claim_outlasts_a_computation_longer_than_the_lease(
        served_overview, store_url):
    """Counts that last took 20 s are claimed for 40 s, not the 30 s lease: 35 s into the
    computation no other process may start it again. (Asked 200 s later: past twice the
    stretched window, 120 s, so the counts are computed before the answer, not after.)"""
    client, tokens = served_overview
    office = auth(tokens["office"])
    _counts_at_head(client, office)
    shared = client.app.state.services.shared_answers
    key = ("obligation_counts", None, local_date(client.app.state.services.ledger.clock()))
    published = shared.fetch(key)
    shared.publish(key, published.token, published.answer, took=20.0)
    with _another_process(store_url, overview_seconds=5, later=200) as (other, computed):
        services = other.app.state.services
        counting = services.read_models.obligation_counts
        later_on = SharedAnswers(services.tables, clock=lambda: time.time() + 200 + 35)
        held = []

        def computing(**kwargs):
            held.append(later_on.claimed(key))
            return counting(**kwargs)

        services.read_models.obligation_counts = computing
        assert other.get("/v1/obligation-counts", headers=office).status_code == 200
        assert len(computed) == 1 and held == [True]


@contextmanager
def _another_process(store_url, *, overview_seconds: float, later: float = 0.0):
    """A second server app on the same store (its wall clock ``later`` seconds ahead), and
    the list of the counts it computes."""
    settings = Settings(database_url=store_url, embedded_worker=False, access_log=False,
                        read_wait_seconds=20, overview_seconds=overview_seconds,
                        freshness_seconds=0)
    with TestClient(create_app(settings)) as other:
        services = other.app.state.services
        services.shared_answers = SharedAnswers(services.tables,
                                                clock=lambda: time.time() + later)
        models = services.read_models
        computed = []

        def counting(**kwargs):
            computed.append(kwargs)
            return type(models).obligation_counts(models, **kwargs)

        models.obligation_counts = counting
        yield other, computed


def _counts_at_head(client, office) -> tuple[int, dict]:
    """The journal's head and the counts computed for it."""
    head = client.get("/v1/events", params={"limit": 1}, headers=office).json()["head"]
    counts = client.get("/v1/obligation-counts", params={"min_position": head},
                        headers=office)
    assert counts.status_code == 200, counts.text
    return head, counts.json()["data"]


def _cancel_one_task(client, tokens, ordinal: str) -> int:
    """Cancel a task of 768/QĐ-UBND; the position of the event, once folded."""
    office = auth(tokens["office"])
    task = plan_task(client, office, ordinal)
    written = client.post(f"/v1/tasks/{task['id']}/cancellation",
                          json={"reason": "Không còn phù hợp"}, headers=office)
    assert written.status_code == 200, written.text
    position = written.json()["position"]
    folded = client.get("/v1/agencies/QNG-STC/obligations", params={"min_position": position},
                        headers=office)
    assert folded.status_code == 200  # the read models have the cancellation
    return position


def test_every_heads_accountability_is_an_overview_and_one_agency_s_is_current(
        served_overview):
    """Without ``agency`` the records last computed are sent again within
    LEDGER_API_OVERVIEW_SECONDS though an event has been folded since; ``min_position``
    gets records that reach it. One agency's records are never sent from before an event
    folded: its software reads what it has just written."""
    client, tokens = served_overview
    office = auth(tokens["office"])
    url = "/v1/accountability"
    # The server's clock is the real one: an extension requested now counts in this year.
    year = {"period": str(local_date(datetime.now(UTC)).year)}

    def requested(records):
        """QNG-STC's extension requests in the period (no record: none)."""
        rows = [r for r in records["without_head"] if r["agency"] == "QNG-STC"]
        return rows[0]["extensions"]["requested"] if rows else 0

    head = client.get("/v1/events", params={"limit": 1}, headers=office).json()["head"]
    first = client.get(url, params={**year, "min_position": head},
                       headers=office).json()["data"]
    own = client.get(url, params={**year, "agency": "QNG-STC"}, headers=office)
    assert own.status_code == 200, own.text
    assert requested(own.json()["data"]) == requested(first) == 0
    task = plan_task(client, office, "6.10")
    written = client.post(f"/v1/tasks/{task['id']}/extension-requests",
                          json={"requested_due": "2022-02-28", "reason": "Chờ số liệu"},
                          headers=auth(tokens["lead"]))
    assert written.status_code == 200, written.text
    position = written.json()["position"]
    folded = client.get("/v1/agencies/QNG-STC/obligations", params={"min_position": position},
                        headers=office)
    assert folded.status_code == 200  # the read models have the request

    own = client.get(url, params={**year, "agency": "QNG-STC"}, headers=office).json()["data"]
    assert own["as_of"]["position"] >= position and requested(own) == 1  # not the window's
    again = client.get(url, params=year, headers=office).json()["data"]
    assert again == first and again["as_of"]["position"] == head < position
    fresh = client.get(url, params={**year, "min_position": position},
                       headers=office).json()["data"]
    assert fresh["as_of"]["position"] >= position and requested(fresh) == 1
    assert client.get(url, params=year, headers=office).json()["data"] == fresh
    other = client.get(url, params={"period": "2021"}, headers=office)
    assert other.json()["data"]["period"]["key"] == "2021"  # another question: computed
    assert other.headers["content-encoding"] == "gzip"  # ~40 KB of JSON, compressed once


def test_obligations_are_gzipped_for_a_client_that_accepts_it(served):
    """Compressed once per cached answer: a default page of 500 obligations is ~470 KB of
    JSON, ~50 KB gzipped."""
    client, tokens = served
    url = "/v1/agencies/QNG-STC/obligations"
    params = {"effective_on": "2021-11-01", "min_position": 1}
    plain = client.get(url, params=params,
                       headers={**auth(tokens["office"]), "Accept-Encoding": "identity"})
    assert plain.status_code == 200, plain.text
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    for cached in (False, True):  # computed, then from the answer cache
        packed = client.get(url, params=params if not cached else {"effective_on": "2021-11-01"},
                            headers={**auth(tokens["office"]), "Accept-Encoding": "gzip"})
        assert packed.status_code == 200, packed.text
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.headers["vary"] == "Accept-Encoding"
        assert packed.num_bytes_downloaded < len(packed.content) / 3  # sent compressed
        assert packed.json() == plain.json()  # the same answer, Vietnamese text included
    assert "Đ" in plain.text


def test_cached_answers_never_outlive_a_new_event(served):
    client, tokens = served
    office = auth(tokens["office"])
    task = plan_task(client, office, "6.10")
    params = {"effective_on": "2021-11-01", "min_position": 1}

    def row():
        answer = client.get("/v1/agencies/QNG-STC/obligations", params=params, headers=office)
        return next(o for o in answer.json()["data"]["obligations"] if o["ordinal"] == "6.10")

    first, again = row(), row()
    assert first == again and first["extensions"]["requested"] == 0
    written = client.post(f"/v1/tasks/{task['id']}/extension-requests",
                          json={"requested_due": "2022-02-28", "reason": "Chờ số liệu"},
                          headers=auth(tokens["lead"]))
    assert written.status_code == 200, written.text
    params["min_position"] = written.json()["position"]
    assert row()["extensions"]["requested"] == 1


def test_a_cached_answer_is_sent_from_the_event_loop_without_the_thread_path(
        store_url, clock, monkeypatch):
    """Within LEDGER_API_FRESHNESS_SECONDS a repeated query is answered from the cache
    without a thread: the thread path (checks and computing) is not entered again. With
    min_position it always is, since the caller waits for its own write."""
    from service.routers import queries

    ledger = Ledger(store_url, clock=clock)
    import_plan(ledger)
    tables = ServiceTables(ledger)
    tables.create()
    lead = TokenStore(tables).create(role="agency", agency="QNG-STC")[0]
    ledger.close()
    settings = Settings(database_url=store_url, embedded_worker=True, access_log=False,
                        read_wait_seconds=20, freshness_seconds=3600)
    with TestClient(create_app(settings)) as client:
        url, params = "/v1/agencies/QNG-STC/obligations", {"effective_on": "2021-11-01"}
        assert client.get(url, params={**params, "min_position": 1},
                          headers=auth(lead)).status_code == 200  # folded
        first = client.get(url, params=params, headers=auth(lead))
        assert first.status_code == 200, first.text
        entered: list[str] = []
        thread_path = queries._obligations

        def counted(*args):
            entered.append("thread")
            return thread_path(*args)

        monkeypatch.setattr(queries, "_obligations", counted)
        again = client.get(url, params=params, headers=auth(lead))
        assert again.status_code == 200 and again.content == first.content
        assert entered == []
        waited = client.get(url, params={**params, "min_position": 1}, headers=auth(lead))
        assert waited.status_code == 200 and entered == ["thread"]
        unknown = client.get("/v1/agencies/QNG-NOPE/obligations", headers=auth(lead))
        assert unknown.status_code == 404 and entered == ["thread", "thread"]
