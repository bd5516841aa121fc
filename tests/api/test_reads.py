"""Reads: the journal, the SSE feed (both stores), read-your-writes through the read-model
seam, request logs, metrics and OpenAPI examples."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from tests.api.conftest import assert_problem

PROGRESS = {"summary": "Đã góp ý dự thảo", "percent": 40}


def _sse(text: str) -> list[dict]:
    messages = []
    for block in text.strip().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.lstrip(" ")
        if "data" in fields:
            messages.append({"id": int(fields["id"]), "event": fields["event"],
                             "data": json.loads(fields["data"])})
    return messages


def test_journal_pages_from_a_position(api):
    page = api.get("inspector", "/v1/events?after=90&limit=3").json()
    assert [e["position"] for e in page["events"]] == [91, 92, 93]
    assert page["next_after"] == 93 and page["head"] == api.head() == 95
    assert page["events"][0]["type"] == "Task.Assigned"
    last = api.get("inspector", f"/v1/events?after={page['head']}").json()
    assert last["events"] == [] and last["next_after"] == page["head"]


def test_journal_limit_is_capped(tmp_path, clock):
    from service.settings import Settings
    from tests.api.conftest import close_api, make_api

    url = f"sqlite:///{tmp_path}/cap.db"
    api = make_api(url, clock, Settings(database_url=url, journal_max_limit=7,
                                        access_log=False))
    try:
        assert len(api.get("inspector", "/v1/events?limit=5000").json()["events"]) == 7
    finally:
        close_api(api)


def test_feed_streams_events_and_resumes_from_last_event_id(api):
    written = api.post("lead", f"/v1/tasks/{api.task('6.9')}/progress-reports", PROGRESS)
    position = written.json()["position"]
    response = api.get("coordinator", f"/v1/feed?after={position - 3}&limit=2")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    messages = _sse(response.text)
    assert [m["id"] for m in messages] == [position - 2, position - 1]
    assert all(m["data"]["position"] == m["id"] for m in messages)
    resumed = api.client.get("/v1/feed?limit=1", headers=api.auth(
        "coordinator", **{"Last-Event-ID": str(position - 1)}))
    (last,) = _sse(resumed.text)
    assert last["id"] == position and last["event"] == "Task.ProgressReported"
    assert last["data"]["meta"]["actor"] == f"token:{api.token_ids['lead']}"


def test_feed_without_a_position_sends_only_new_events(api):
    # Nothing new is written, so the connection ends after LEDGER_API_FEED_MAX_SECONDS
    # (0.2 s in tests) with no event: old events are not replayed.
    response = api.get("inspector", "/v1/feed")
    assert response.status_code == 200
    assert response.text.startswith("retry: ")
    assert _sse(response.text) == []


def test_queries_wait_for_the_read_models_to_reach_a_write(api):
    models = api.read_models
    written = api.post("lead", f"/v1/tasks/{api.task('6.9')}/progress-reports", PROGRESS)
    position = written.json()["position"]
    models.position = position - 1
    behind = api.get("lead", f"/v1/agencies/QNG-STC/obligations?min_position={position}")
    assert_problem(behind, 503, "read-models-behind")
    assert behind.headers["Retry-After"] == "2"
    models.position = position
    answer = api.get("lead", f"/v1/agencies/QNG-STC/obligations?min_position={position}"
                     "&effective_on=2022-01-01&as_of=2021-12-31")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["query"] == {"agency": "QNG-STC", "effective_on": "2022-01-01",
                             "as_of": "2021-12-31T17:00:00+00:00"}
    assert body["data"][0]["due_on"] == "2022-01-01"
    name, args, kwargs = models.calls[-1]
    assert (name, args) == ("obligations", ("QNG-STC",))
    assert kwargs == {"as_of": datetime(2021, 12, 31, 17, 0, tzinfo=UTC),
                      "effective_on": date(2022, 1, 1), "limit": 500, "offset": 0}
    accountability = api.get("inspector", "/v1/accountability?period=2021-Q4&agency=QNG-STC")
    assert accountability.json() == {"query": {"period": "2021-Q4", "agency": "QNG-STC"},
                                     "data": {"period": "2021-Q4", "heads": []}}
    history = api.get("inspector", f"/v1/history/task/{api.task('6.9')}?as_of="
                      "2021-08-26T10:00:00%2B07:00")
    assert history.json()["query"]["as_of"] == "2021-08-26T03:00:00+00:00"
    assert_problem(api.get("inspector", "/v1/history/person/x"), 422, "validation-error",
                   field="entity_type")
    ready = api.client.get("/readyz").json()
    assert ready["projections"]["lag"] == api.head() - position


def test_request_log_lines_are_json_with_actor_route_status_and_position(tmp_path, clock,
                                                                         capsys):
    from service.settings import Settings
    from tests.api.conftest import close_api, make_api

    url = f"sqlite:///{tmp_path}/log.db"
    api = make_api(url, clock, Settings(database_url=url, access_log=True))
    try:
        capsys.readouterr()
        written = api.post("lead", f"/v1/tasks/{api.task('6.9')}/progress-reports", PROGRESS,
                           **{"X-Request-ID": "req-1"})
        api.get("other", "/v1/tasks/00000000-0000-0000-0000-000000000000")
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                 if line.startswith("{")]
    finally:
        close_api(api)
    requests = [line for line in lines if line.get("event") == "request"]
    write, missing = requests[-2:]
    assert write["request_id"] == "req-1"
    assert write["route"] == "/v1/tasks/{task_id}/progress-reports"
    assert write["status"] == 200 and write["actor"] == f"token:{api.token_ids['lead']}"
    assert write["position"] == written.json()["position"] and write["duration_ms"] >= 0
    assert missing["status"] == 404 and missing["error"] == "unknown-task"


def test_metrics_count_requests_by_route(api):
    api.get("inspector", f"/v1/tasks/{api.task('6.9')}")
    path = f"/v1/tasks/{api.task('6.9')}/progress-reports"
    for _ in range(2):  # the replay stores nothing and is not counted
        api.post("lead", path, PROGRESS, **{"Idempotency-Key": "m-1"})
    api.client.get("/readyz")
    text = api.client.get("/metrics").text
    assert ('ledger_http_requests_total{method="GET",route="/v1/tasks/{task_id}",'
            'status="200"} 1.0') in text
    assert f"ledger_head_position {float(api.head())}" in text
    assert "ledger_api_events_written_total 1.0" in text


def test_openapi_documents_auth_idempotency_and_seed_examples(sqlite_api):
    schema = sqlite_api.client.get("/openapi.json").json()
    issue = schema["paths"]["/v1/directives"]["post"]
    assert {"Idempotency-Key"} <= {p["name"] for p in issue["parameters"]}
    assert set(issue["responses"]) >= {"201", "401", "403", "409", "412", "422", "503"}
    progress = schema["paths"]["/v1/tasks/{task_id}/progress-reports"]["post"]
    assert {"If-Match", "Idempotency-Key"} <= {p["name"] for p in progress["parameters"]}
    example = schema["components"]["schemas"]["IssueDirectiveIn"]["examples"][0]
    assert example["number"] == "1864/UBND-TTHC"
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert sqlite_api.client.get("/docs").status_code == 200
