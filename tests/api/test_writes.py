"""Writes on both stores: Idempotency-Key (retries, concurrent retries, reuse, atomicity),
ETag/If-Match (412), conflicting writes (409), the actor and request id in the metadata."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from uuid import UUID

import pytest

from domain.actors import CommandContext
from domain.application import Ledger
from domain.errors import ConcurrentWrite
from tests.api.conftest import assert_problem
from tests.behaviour.helpers import agency

PROGRESS = {"summary": "Đã góp ý dự thảo báo cáo", "percent": 40}


def test_a_retry_with_the_same_key_returns_the_first_response_and_stores_nothing(api):
    path = f"/v1/tasks/{api.task('6.9')}/progress-reports"
    first = api.post("lead", path, PROGRESS, **{"Idempotency-Key": "sotc-2021-0001"})
    assert first.status_code == 200, first.text
    head = api.head()
    again = api.post("lead", path, PROGRESS, **{"Idempotency-Key": "sotc-2021-0001"})
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["ETag"] == first.headers["ETag"] == '"2"'
    assert api.head() == head
    assert api.idempotency_rows() == 1
    # Key order and spacing do not make a different request.
    reordered = api.client.post(path, content=b'{"percent": 40, "summary": '
                                b'"\xc4\x90\xc3\xa3 g\xc3\xb3p \xc3\xbd d\xe1\xbb\xb1 th\xe1'
                                b'\xba\xa3o b\xc3\xa1o c\xc3\xa1o"}',
                                headers=api.auth("lead", **{"Idempotency-Key": "sotc-2021-0001",
                                                            "Content-Type": "application/json"}))
    assert reordered.status_code == 200 and reordered.json() == first.json()
    assert api.head() == head



def test_after_a_replay_keys_are_looked_up_before_their_command_runs(api, monkeypatch):
    """A burst of retries: once this process has replayed an answer, a retry is answered
    from its stored key without running the command (whose failure on the key would also
    fail the other commands of its group-commit batch), for LOOKUP_FIRST_SECONDS."""
    store = api.svc.idempotency
    now = [1000.0]
    monkeypatch.setattr(store, "_monotonic", lambda: now[0])
    runs = []
    report = api.svc.ledger.report_progress

    def counted(*args, **kwargs):
        runs.append(kwargs.get("summary"))
        return report(*args, **kwargs)

    monkeypatch.setattr(api.svc.ledger, "report_progress", counted)
    path = f"/v1/tasks/{api.task('6.9')}/progress-reports"
    first = api.post("lead", path, PROGRESS, **{"Idempotency-Key": "storm-1"})
    assert first.status_code == 200 and len(runs) == 1
    assert not store.lookup_first()
    again = api.post("lead", path, PROGRESS, **{"Idempotency-Key": "storm-1"})
    assert again.headers["Idempotent-Replayed"] == "true" and len(runs) == 2  # run, refused
    assert store.lookup_first()

    head = api.head()
    third = api.post("lead", path, PROGRESS, **{"Idempotency-Key": "storm-1"})
    assert (third.status_code, third.json(), third.headers["Idempotent-Replayed"]) == (
        200, first.json(), "true")
    assert len(runs) == 2  # answered from the key: the command did not run
    assert_problem(api.post("lead", path, {**PROGRESS, "percent": 50},
                            **{"Idempotency-Key": "storm-1"}),
                   422, "idempotency-key-reused", field="Idempotency-Key")
    assert len(runs) == 2 and api.head() == head
    fresh = api.post("lead", path, PROGRESS, **{"Idempotency-Key": "storm-2"})
    assert fresh.status_code == 200 and "Idempotent-Replayed" not in fresh.headers
    # (On PostgreSQL the refused retry's sequence number is a gap: greater, not head + 1.)
    assert len(runs) == 3 and api.head() == fresh.json()["position"] > head

    now[0] += store.LOOKUP_FIRST_SECONDS  # the window closes: retries run again
    assert not store.lookup_first()
    late = api.post("lead", path, PROGRESS, **{"Idempotency-Key": "storm-2"})
    assert late.json() == fresh.json() and late.headers["Idempotent-Replayed"] == "true"
    assert len(runs) == 4 and api.idempotency_rows() == 2

def test_a_directive_issued_with_a_key_is_replayed_with_its_location(api, clock):
    clock.set("2024-04-15 09:00")
    body = {"number": "1864/UBND-TTHC", "issuer": "QNG-UBND", "issued_on": "2024-04-10",
            "assigning_office": "QNG-VPUBND", "title": "Chấn chỉnh tình trạng chậm trễ",
            "tasks": [{"ordinal": str(i), "content": f"Nhiệm vụ {i}", "lead": "QNG-STNMT",
                       "deadline": "trước ngày 31/5/2024"} for i in range(1, 4)]}
    first = api.post("office", "/v1/directives", body, **{"Idempotency-Key": "vp-1864"})
    assert first.status_code == 201, first.text
    result = first.json()
    assert result["entity_type"] == "Directive" and result["version"] == 1
    assert first.headers["Location"] == f"/v1/directives/{result['entity_id']}"
    assert len(result["positions"]) == 1 + 2 + 3  # directive, number index (2), tasks
    again = api.post("office", "/v1/directives", body, **{"Idempotency-Key": "vp-1864"})
    assert (again.status_code, again.json(), again.headers["Location"]) == (
        201, result, first.headers["Location"])
    # Without the key the same document is a conflict, not a duplicate.
    assert_problem(api.post("office", "/v1/directives", body), 409, "duplicate-directive",
                   field="number")
    read = api.get("inspector", first.headers["Location"])
    assert read.status_code == 200 and read.headers["ETag"] == '"1"'
    assert [t["ordinal"] for t in read.json()["tasks"]] == ["1", "2", "3"]


def test_a_key_reused_for_another_request_is_refused(api):
    task = api.task("6.9")
    key = {"Idempotency-Key": "reused"}
    assert api.post("lead", f"/v1/tasks/{task}/progress-reports", PROGRESS, **key).is_success
    head = api.head()
    assert_problem(api.post("lead", f"/v1/tasks/{task}/progress-reports",
                            {**PROGRESS, "percent": 50}, **key),
                   422, "idempotency-key-reused", field="Idempotency-Key")
    assert_problem(api.post("lead", f"/v1/tasks/{api.task('6.10')}/progress-reports",
                            PROGRESS, **key), 422, "idempotency-key-reused")
    assert api.head() == head
    # Keys belong to their token: another caller's identical key is its own write.
    other = api.post("coordinator", f"/v1/tasks/{task}/progress-reports", PROGRESS, **key)
    # (Refused retries roll back; on PostgreSQL their sequence numbers are gaps, so the next
    # position is greater than the head, not necessarily head + 1.)
    assert other.status_code == 200 and other.json()["position"] == api.head() > head


def test_concurrent_retries_with_one_key_store_one_write(api):
    path = f"/v1/tasks/{api.task('6.9')}/progress-reports"
    head = api.head()

    def send(_):
        return api.post("lead", path, PROGRESS, **{"Idempotency-Key": "burst-1"})

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(send, range(12)))
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    assert len({r.text for r in responses}) == 1
    assert api.head() == head + 1
    assert api.idempotency_rows() == 1
    assert len(api.ledger.task(UUID(api.task("6.9"))).progress) == 1


def test_the_key_commits_with_the_events_or_not_at_all(api):
    """The record is written by a hook inside the insert transaction: if anything in that
    transaction fails after it, neither the events nor the key remain."""
    svc = api.svc
    task = UUID(api.task("6.9"))

    def render(receipt):
        return {"positions": list(receipt.positions)}

    def crash(tx, receipt):
        raise RuntimeError("power cut after the insert, before the commit")

    hook = svc.idempotency.record_hook("token:x", "k1", "fp", 200, render, {})
    ctx = CommandContext(agency("QNG-STC").actor, after_insert=(hook, crash))
    head = api.head()
    with pytest.raises(RuntimeError):
        api.ledger.report_progress(ctx, task, summary="x")
    assert api.head() == head
    assert svc.idempotency.lookup("token:x", "k1") is None
    ok = CommandContext(agency("QNG-STC").actor, after_insert=(hook,))
    receipt = api.ledger.report_progress(ok, task, summary="x")
    assert svc.idempotency.lookup("token:x", "k1").body == {"positions": [receipt.position]}
    # The key's primary key is the last guard: a second write under a taken key (a retry
    # that missed the lookup) is rolled back with its events.
    head = api.head()
    with pytest.raises(ConcurrentWrite):
        api.ledger.report_progress(ok, UUID(api.task("6.10")), summary="y")
    assert api.head() == head
    assert api.ledger.task(UUID(api.task("6.10"))).progress == []


def test_if_match_guards_against_stale_writes(api):
    task = api.task("6.9")
    read = api.get("lead", f"/v1/tasks/{task}")
    assert read.headers["ETag"] == '"1"' and read.json()["version"] == 1
    path = f"/v1/tasks/{task}/progress-reports"
    ok = api.post("lead", path, PROGRESS, **{"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.headers["ETag"] == '"2"'
    head = api.head()
    assert_problem(api.post("coordinator", path, PROGRESS, **{"If-Match": '"1"'}), 412,
                   "stale-version", field="If-Match")
    assert_problem(api.post("lead", path, PROGRESS, **{"If-Match": "version one"}), 412,
                   "stale-version", field="If-Match")
    assert api.head() == head
    assert api.post("lead", path, PROGRESS, **{"If-Match": 'W/"2"'}).status_code == 200
    assert api.post("lead", path, PROGRESS, **{"If-Match": "*"}).status_code == 200
    directive = api.get("office", f"/v1/directives/{api.plan.id}")
    assert directive.headers["ETag"] == '"1"'
    amend = f"/v1/directives/{api.plan.id}/amendments"
    assert api.post("office", amend, {"note": "Đính chính"}, **{"If-Match": '"1"'}).is_success
    assert_problem(api.post("office", amend, {"note": "Lần hai"}, **{"If-Match": '"1"'}), 412,
                   "stale-version")


def interleaved_write(api, store_url, clock, task: UUID, **headers: str):
    """POST a progress report while another process saves to the same task between our
    read and our write (once)."""
    other = Ledger(store_url, clock=clock)
    original = api.ledger.task

    def task_then_interleave(task_uuid, version=None):
        loaded = original(task_uuid, version)
        api.ledger.task = original  # interleave once
        other.report_progress(agency("QNG-STC"), task, summary="written by another process")
        return loaded

    try:
        api.ledger.task = task_then_interleave
        return api.post("lead", f"/v1/tasks/{task}/progress-reports", PROGRESS, **headers)
    finally:
        api.ledger.task = original
        other.close()


def test_a_write_that_loses_a_race_is_run_again_on_the_state_that_won(api, store_url, clock):
    """Without If-Match the client asked for the current state: when another process saves
    between our read and our write, the store refuses ours, and the server runs it again
    on the state that won instead of answering 409 for the client to do the same."""
    task = UUID(api.task("6.9"))
    response = interleaved_write(api, store_url, clock, task)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 3 and api.ledger.task(task).version == 3
    summaries = [p["summary"] for p in api.ledger.task(task).progress]
    assert summaries == ["written by another process", PROGRESS["summary"]]


def test_a_conflicting_write_with_if_match_is_409(api, store_url, clock):
    """With If-Match the client named the version it wrote against: the conflict is its to
    resolve."""
    task = UUID(api.task("6.9"))
    response = interleaved_write(api, store_url, clock, task, **{"If-Match": '"1"'})
    assert_problem(response, 409, "concurrent-write")
    summaries = [p["summary"] for p in api.ledger.task(task).progress]
    assert summaries == ["written by another process"]  # only the other process's


def test_events_carry_the_token_and_the_request_id(api):
    path = f"/v1/tasks/{api.task('6.9')}/progress-reports"
    body = {**PROGRESS, "source_document": {"number": "68/BC-STC", "issued_on": "2021-08-25"}}
    response = api.post("lead", path, body, **{"X-Request-ID": "dms-req-42"})
    assert response.headers["X-Request-ID"] == "dms-req-42"
    entry = api.get("inspector", f"/v1/events?after={response.json()['position'] - 1}"
                    ).json()["events"][0]
    assert entry["meta"] == {
        "actor": f"token:{api.token_ids['lead']}", "actor_role": "agency",
        "actor_agency": "QNG-STC", "correlation_id": "dms-req-42", "causation_id": None,
        "source_document": {"number": "68/BC-STC", "issued_on": "2021-08-25"},
    }
    assert entry["data"]["summary"] == PROGRESS["summary"]


def test_a_full_task_lifecycle_over_http(api, clock):
    task = api.task("6.9")
    base = f"/v1/tasks/{task}"
    steps = [
        ("lead", "extension-requests", {"requested_due": "2022-03-31", "reason": "Chờ"}),
        ("office", "extension-grants", {}),
        ("lead", "completion-reports", {"completed_on": "2021-08-26", "summary": "Xong"}),
        ("office", "completion-rejections", {"reason": "Thiếu phụ lục"}),
        ("lead", "completion-reports", {"completed_on": "2021-08-26", "summary": "Bổ sung"}),
        ("office", "completion-confirmations", {"note": "Đạt"}),
    ]
    for role, action, body in steps:
        response = api.post(role, f"{base}/{action}", body)
        assert response.status_code == 200, (action, response.text)
    shown = api.get("inspector", f"{base}?on=2022-01-15").json()
    assert shown["version"] == 7
    obligation = shown["obligations"][0]
    assert obligation["status"] == "done_on_time" and obligation["extended"] is True
    assert obligation["original_due"] == "2021-12-31" and obligation["due_on"] == "2022-03-31"
    assert obligation["status_vi"] == "hoàn thành đúng hạn"
    assert_problem(api.post("office", f"{base}/completion-confirmations", {}), 422,
                   "validation-error", field="occurrence")
    assert api.ledger.task(UUID(task)).occurrence("once").completed_on == date(2021, 8, 26)
