"""Every documented error is RFC 9457 problem+json with a stable type; bad input is 4xx,
never 5xx, and stores nothing."""

from __future__ import annotations

import json
import unicodedata

import pytest
from eventsourcing.persistence import OperationalError

from tests.api.conftest import FakeReadModels, assert_problem, close_api, make_api
from tests.integrity.helpers import Attacker

TASK_BODY = {"ordinal": "1", "content": "Tổng hợp, báo cáo", "lead": "QNG-STNMT",
             "deadline": "trước ngày 31/5/2021"}


def _directive(**changes):
    return {"number": "99/UBND-TTHC", "issuer": "QNG-UBND", "issued_on": "2021-08-20",
            "assigning_office": "QNG-VPUBND",
            "title": "Thử nghiệm", "tasks": [TASK_BODY], **changes}


def test_malformed_bodies_are_4xx_and_store_nothing(sqlite_api):
    api = sqlite_api
    path = f"/v1/tasks/{api.task('6.9')}/progress-reports"
    head = api.head()
    headers = api.auth("lead", **{"Content-Type": "application/json"})
    assert_problem(api.client.post(path, content=b'{"summary": ', headers=headers), 400,
                   "malformed-json")
    assert_problem(api.client.post(path, content=b"\xff\xfe", headers=headers), 400,
                   "malformed-json")
    assert_problem(api.post("lead", path, {"summary": 42}), 422, "validation-error",
                   field="summary")
    assert_problem(api.post("lead", path, {"summary": "x", "percent": "40"}), 422,
                   "validation-error", field="percent")
    assert_problem(api.post("lead", path, {"summary": "x", "percent": 101}), 422,
                   "validation-error", field="percent")
    assert_problem(api.post("lead", path, {"summary": "x", "extra": 1}), 422,
                   "validation-error", field="extra")
    assert_problem(api.post("lead", path, {"summary": "x", "reported_on": "26/08/2021"}), 422,
                   "validation-error", field="reported_on")
    assert_problem(api.post("lead", path, {"summary": "x", "occurrence": "năm 2022"}), 422,
                   "validation-error", field="occurrence")
    assert_problem(api.post("lead", path, {"summary": ""}), 422, "validation-error",
                   field="summary")
    assert_problem(api.post("lead", path, []), 422, "validation-error")
    assert_problem(api.client.post(path, content=b"summary=x", headers=api.auth(
        "lead", **{"Content-Type": "text/plain"})), 415, "unsupported-media-type")
    assert api.head() == head


def test_non_nfc_text_is_refused_with_the_field(sqlite_api):
    api = sqlite_api
    decomposed = unicodedata.normalize("NFD", "Đã góp ý dự thảo")
    assert decomposed != "Đã góp ý dự thảo"
    body = assert_problem(api.post("lead", f"/v1/tasks/{api.task('6.9')}/progress-reports",
                                   {"summary": decomposed}), 422, "text-not-nfc",
                          field="summary")
    assert "NFC" in body["detail"]
    nested = assert_problem(api.post("office", "/v1/directives", _directive(
        tasks=[{**TASK_BODY, "content": decomposed}])), 422, "text-not-nfc")
    assert nested["field"] == "tasks[0].content"


def test_domain_refusals_name_the_field(sqlite_api):
    api = sqlite_api
    head = api.head()
    body = assert_problem(api.post("office", "/v1/directives", _directive(
        tasks=[{**TASK_BODY, "deadline": "khi nào xong thì báo"}])), 422,
        "unparseable-deadline", field="deadline")
    assert "khi nào xong thì báo" in body["detail"]
    assert_problem(api.post("office", "/v1/directives", _directive(number="không số")), 422,
                   "invalid-document-number")
    assert_problem(api.post("office", "/v1/directives", _directive(
        tasks=[{**TASK_BODY, "lead": "QNG-NOPE"}])), 404, "unknown-agency", field="lead")
    assert_problem(api.post("office", "/v1/directives", _directive(issued_on="2030-01-01")),
                   422, "validation-error", field="issued_on")
    assert_problem(api.post("office", "/v1/directives", _directive(tasks=[])), 422,
                   "validation-error", field="tasks")
    assert_problem(api.post("office", "/v1/directives", _directive(issued_on="2021-02-30")),
                   422, "validation-error", field="issued_on")
    assert_problem(api.post("lead", f"/v1/tasks/{api.task('6.9')}/extension-requests",
                            {"requested_due": "2021-12-01", "reason": "x"}), 422,
                   "validation-error", field="requested_due")
    cancel = f"/v1/tasks/{api.task('6.9')}/cancellation"
    assert api.post("office", cancel, {"reason": "Dừng"}).status_code == 200
    assert_problem(api.post("office", cancel, {"reason": "Lần hai"}), 409, "task-not-open")
    assert api.head() == head + 1


def test_not_found(sqlite_api):
    api = sqlite_api
    missing = "00000000-0000-0000-0000-000000000000"
    assert_problem(api.get("inspector", f"/v1/tasks/{missing}"), 404, "unknown-task")
    assert_problem(api.post("lead", f"/v1/tasks/{missing}/progress-reports", {"summary": "x"}),
                   404, "unknown-task")
    assert_problem(api.get("inspector", f"/v1/directives/{missing}"), 404, "unknown-directive")
    assert_problem(api.get("inspector", "/v1/agencies/QNG-NOPE"), 404, "unknown-agency")
    assert_problem(api.get("inspector", "/v1/agencies/QNG-NOPE/obligations"), 404,
                   "unknown-agency")
    assert_problem(api.get("inspector", "/v1/tasks/not-a-uuid"), 422, "validation-error",
                   field="task_id")
    assert_problem(api.get("inspector", "/v1/nothing-here"), 404, "no-such-route")
    assert_problem(api.client.delete(f"/v1/tasks/{missing}", headers=api.auth("admin")), 405,
                   "method-not-allowed")
    assert api.get("inspector", "/v1/directives?number=999/KH-UBND").json() == []


def test_bad_tokens_are_401(sqlite_api):
    api = sqlite_api
    for header in ("Bearer nonsense", "Bearer cdl_0000000000000000_" + "A" * 43, "Basic x:y",
                   f"Bearer {api.tokens['lead'][:-1]}X"):
        response = api.client.get("/v1/agencies", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.headers["content-type"] == "application/problem+json"
    expired = api.svc.tokens
    original = expired.clock
    try:
        expired.clock = lambda: original().replace(year=2099)
        assert api.svc.tokens.authenticate(api.tokens["lead"]) is not None  # never expires
    finally:
        expired.clock = original


def test_expired_tokens_are_refused(sqlite_api):
    from datetime import UTC, datetime, timedelta

    api = sqlite_api
    store = api.svc.tokens
    secret, _ = store.create(role="inspector", expires_at=datetime.now(UTC) + timedelta(days=1))
    assert api.client.get("/v1/agencies", headers={"Authorization": f"Bearer {secret}"}
                          ).status_code == 200
    original = store.clock
    try:
        store.clock = lambda: original() + timedelta(days=2)
        assert_problem(api.client.get("/v1/agencies", headers={
            "Authorization": f"Bearer {secret}"}), 401, "invalid-token")
    finally:
        store.clock = original


def test_oversized_bodies_are_413(tmp_path, clock):
    from service.settings import Settings

    url = f"sqlite:///{tmp_path}/small.db"
    api = make_api(url, clock, Settings(database_url=url, max_body_bytes=2048,
                                        access_log=False))
    try:
        path = f"/v1/tasks/{api.task('6.9')}/progress-reports"
        head = api.head()
        assert_problem(api.post("lead", path, {"summary": "x" * 5000}), 413, "body-too-large")

        def chunks():
            yield b'{"summary": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}'

        streamed = api.client.post(path, content=chunks(), headers=api.auth(
            "lead", **{"Content-Type": "application/json"}))
        assert "content-length" not in streamed.request.headers
        assert_problem(streamed, 413, "body-too-large")
        assert api.head() == head
        assert api.post("lead", path, {"summary": "vừa đủ"}).status_code == 200
    finally:
        close_api(api)


def test_idempotency_key_and_feed_headers_are_validated(sqlite_api):
    api = sqlite_api
    path = f"/v1/tasks/{api.task('6.9')}/progress-reports"
    assert_problem(api.post("lead", path, {"summary": "x"}, **{"Idempotency-Key": "k" * 201}),
                   422, "validation-error", field="Idempotency-Key")
    assert_problem(api.post("lead", path, {"summary": "x"}, **{"Idempotency-Key": "two words"}),
                   422, "invalid-idempotency-key")
    assert_problem(api.client.get("/v1/feed", headers=api.auth("lead", **{
        "Last-Event-ID": "abc"})), 422, "validation-error", field="Last-Event-ID")
    assert_problem(api.get("lead", "/v1/events?limit=0"), 422, "validation-error",
                   field="limit")
    assert_problem(api.get("lead", "/v1/events?after=-1"), 422, "validation-error")
    assert_problem(api.get("lead", "/v1/accountability?period=2021&as_of=yesterday"), 422,
                   "validation-error", field="as_of")
    assert_problem(api.get("lead", "/v1/accountability?period=last-year"), 422,
                   "validation-error", field="period")


def test_store_unavailable_is_503_with_retry_after(sqlite_api, monkeypatch):
    api = sqlite_api

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(api.ledger.recorder, "select_notifications", down)
    monkeypatch.setattr(api.ledger.recorder, "max_notification_id", down)
    response = api.get("inspector", "/v1/events")
    assert_problem(response, 503, "store-unavailable")
    assert response.headers["Retry-After"] == "2"
    ready = api.client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["Retry-After"] == "2"
    assert ready.json()["status"] == "unavailable"
    assert api.client.get("/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/v1/agencies/QNG-STC/obligations",
                                  "/v1/accountability?period=2021",
                                  "/v1/history/agency/QNG-STC"])
def test_queries_without_read_models_are_503(tmp_path, clock, path):
    url = f"sqlite:///{tmp_path}/none.db"
    api = make_api(url, clock, read_models=None)
    try:
        response = api.get("inspector", path)
        assert_problem(response, 503, "read-models-unavailable")
        assert response.headers["Retry-After"]
        assert api.client.get("/readyz").json()["projections"] == {"available": False}
    finally:
        close_api(api)


def test_a_failing_read_model_is_reported_not_ready_but_the_store_is(sqlite_api):
    api = sqlite_api

    class Broken(FakeReadModels):
        def status(self):
            raise RuntimeError("projection table missing")

    api.svc.read_models = Broken()
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["projections"] == {"available": False, "error": "RuntimeError"}


def test_agency_conflicts_are_409(sqlite_api):
    api = sqlite_api
    body = {"code": "QNG-SYT", "name": "Sở Y tế", "level": "provincial", "parent": "QNG-UBND"}
    assert_problem(api.post("admin", "/v1/agencies", body), 409, "duplicate-agency",
                   field="code")
    dissolve = "/v1/agencies/QNG-SGTVT/dissolve"
    assert api.post("admin", dissolve, {"effective_on": "2025-03-01"}).status_code == 200
    assert_problem(api.post("admin", dissolve, {"effective_on": "2025-04-01"}), 409,
                   "invalid-transition", field="agency")
    assert_problem(api.post("admin", "/v1/agencies/QNG-SYT/merge",
                            {"successor": "QNG-SGTVT", "effective_on": "2025-05-01"}), 409,
                   "invalid-transition", field="successor")


def test_an_event_edited_behind_the_ledgers_back_is_a_500_problem_naming_it(api):
    """The journal cannot be served past a row that no longer reads; the client is told why
    (and the service logs it), not handed a bare internal error."""
    attacker = Attacker(api.svc.settings.database_url)
    try:
        attacker.rewrite(60, lambda state: state[: len(state) // 2])
    finally:
        attacker.close()
    assert api.get("inspector", "/v1/events?after=0&limit=59").status_code == 200
    body = assert_problem(api.get("inspector", "/v1/events?after=50&limit=20"), 500,
                          "unreadable-event")
    assert "at position 60 (Task.Assigned" in body["detail"]
    assert "ledger verify" in body["detail"]
    # The live feed has already answered 200 when it meets the row: it ends with an error event.
    feed = api.get("inspector", "/v1/feed?after=50")
    assert feed.status_code == 200
    last = feed.text.strip().split("\n\n")[-1].splitlines()
    assert last[0] == "event: error" and last[1].startswith("data: "), feed.text
    streamed = json.loads(last[1][len("data: "):])
    assert (streamed["status"], streamed["code"]) == (500, "unreadable-event")
    assert streamed["detail"] == body["detail"]
