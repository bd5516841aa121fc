"""Every route × every role: the allowed roles succeed, the others get 403 naming the
missing scope, and a refused write stores nothing. (Who may write is decided in domain;
this checks that the HTTP layer carries the token's identity there faithfully.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from uuid import UUID

import pytest

from tests.api.conftest import ROLES, assert_problem
from tests.behaviour.helpers import OPERATOR


@dataclass(frozen=True)
class Route:
    name: str
    path: str  # {task}, {conditional}, {directive}, {token} are filled in
    body: dict
    allowed: tuple[str, ...]
    prepare: Callable | None = None
    clock: str | None = None
    status: int = 200

    def __str__(self) -> str:
        return self.name


def _request_extension(ledger, task):
    ledger.request_extension(OPERATOR, task, requested_due=date(2022, 3, 31), reason="Chờ")


def _report_completion(ledger, task):
    ledger.report_completion(OPERATOR, task, completed_on=date(2021, 8, 26), summary="Xong")


def _cancel(ledger, task):
    ledger.cancel_task(OPERATOR, task, reason="Tạm dừng")


def _appoint(ledger, task):
    ledger.appoint_head(OPERATOR, "QNG-STC", "Nguyễn Văn A", "Giám đốc Sở Tài chính",
                        date(2021, 1, 1))


TASK = "/v1/tasks/{task}"
WRITES = [
    Route("report progress", f"{TASK}/progress-reports",
          {"summary": "Đã góp ý dự thảo", "percent": 40}, ("lead", "coordinator")),
    Route("request extension", f"{TASK}/extension-requests",
          {"requested_due": "2022-03-31", "reason": "Chờ ý kiến các sở"}, ("lead",)),
    Route("grant extension", f"{TASK}/extension-grants", {"note": "Đồng ý"}, ("office",),
          prepare=_request_extension),
    Route("reject extension", f"{TASK}/extension-rejections", {"reason": "Không đủ căn cứ"},
          ("office",), prepare=_request_extension),
    Route("report completion", f"{TASK}/completion-reports",
          {"completed_on": "2021-08-26", "summary": "Đã ban hành quyết định",
           "document": "800/QĐ-UBND"}, ("lead",)),
    Route("confirm completion", f"{TASK}/completion-confirmations", {}, ("office",),
          prepare=_report_completion),
    Route("reject completion", f"{TASK}/completion-rejections", {"reason": "Chưa đạt"},
          ("office",), prepare=_report_completion),
    Route("cancel task", f"{TASK}/cancellation", {"reason": "Không còn phù hợp"}, ("office",)),
    Route("reopen task", f"{TASK}/reopening", {"reason": "Tiếp tục thực hiện"}, ("office",),
          prepare=_cancel),
    Route("reassign task", f"{TASK}/reassignment",
          {"lead": "QNG-SNV", "coordinating": ["QNG-STP"], "reason": "Điều chỉnh"},
          ("office",)),
    Route("trigger deadline", "/v1/tasks/{conditional}/deadline-trigger",
          {"due_on": "2021-12-31", "basis": "Hướng dẫn của Bộ Nội vụ"}, ("office",)),
    Route("issue directive", "/v1/directives", {
        "number": "1864/UBND-TTHC", "issuer": "QNG-UBND", "assigning_office": "QNG-VPUBND",
        "issued_on": "2024-04-10", "title": "Chấn chỉnh tình trạng chậm trễ",
        "tasks": [{"ordinal": "2", "content": "Tổng hợp, báo cáo, kiến nghị",
                   "lead": "QNG-STNMT", "coordinating": ["QNG-STTTT"],
                   "deadline": "trước ngày 31/5/2024"}]},
          ("office",), clock="2024-04-15 09:00", status=201),
    Route("amend directive", "/v1/directives/{directive}/amendments",
          {"amended_by": "900/QĐ-UBND", "note": "Đính chính trích yếu",
           "title": "Ban hành Kế hoạch cải cách hành chính tỉnh Quảng Ngãi giai đoạn 2021-2025"},
          ("office",)),
    Route("revoke directive", "/v1/directives/{directive}/revocation",
          {"revoked_on": "2021-08-26", "reason": "Thay thế bằng văn bản khác"}, ("office",)),
    Route("register agency", "/v1/agencies",
          {"code": "QNG-STHU", "name": "Sở Thử nghiệm", "level": "provincial",
           "parent": "QNG-UBND"}, ("admin",), status=201),
    Route("rename agency", "/v1/agencies/QNG-SYT/rename",
          {"name": "Sở Y tế tỉnh Quảng Ngãi", "effective_on": "2021-09-01"}, ("admin",)),
    Route("merge agency", "/v1/agencies/QNG-STTTT/merge",
          {"successor": "QNG-SKHCN", "effective_on": "2025-03-01"}, ("admin",)),
    Route("dissolve agency", "/v1/agencies/QNG-SGTVT/dissolve",
          {"effective_on": "2025-03-01"}, ("admin",)),
    Route("appoint head", "/v1/agencies/QNG-STC/heads",
          {"person": "Nguyễn Văn A", "position": "Giám đốc Sở Tài chính",
           "from_on": "2021-01-01"}, ("admin",)),
    Route("record head left", "/v1/agencies/QNG-STC/head-departures",
          {"person": "Nguyễn Văn A", "to_on": "2021-08-01"}, ("admin",), prepare=_appoint),
]


def _fill(api, path: str) -> str:
    return path.format(task=api.task("6.9"), conditional=api.task("5.5"),
                       directive=api.plan.id, token=api.token_ids["other"])


@pytest.mark.parametrize("route", WRITES, ids=str)
def test_write_route_by_role(sqlite_api, clock, route):
    api = sqlite_api
    if route.clock:
        clock.set(route.clock)
    if route.prepare:
        route.prepare(api.ledger, UUID(api.task("6.9")))
    path = _fill(api, route.path)
    for role in ROLES:
        if role in route.allowed:
            continue
        before = api.head()
        response = api.post(role, path, route.body)
        code = response.json().get("code")
        assert code in ("not-permitted", "not-lead-agency"), (role, response.text)
        body = assert_problem(response, 403, code)
        assert body["scope"], f"{role}: a 403 must name the missing scope"
        assert api.head() == before, f"{role}: a refused write stored events"
    for role in route.allowed:
        before = api.head()
        response = api.post(role, path, route.body)
        assert response.status_code == route.status, (role, response.text)
        result = response.json()
        assert result["position"] == api.head() > before
        entry = api.client.get(f"/v1/events?after={result['position'] - 1}&limit=1",
                               headers=api.auth("inspector")).json()["events"][0]
        assert entry["meta"]["actor"] == f"token:{api.token_ids[role]}"
        assert entry["meta"]["actor_role"] == {"lead": "agency", "coordinator": "agency"}.get(
            role, role)


def test_forbidden_scopes_are_named(sqlite_api):
    api = sqlite_api
    path = f"/v1/tasks/{api.task('6.9')}"
    assert_problem(api.post("inspector", f"{path}/progress-reports", {"summary": "x"}), 403,
                   "not-permitted", scope="task:write")
    assert_problem(api.post("other", f"{path}/progress-reports", {"summary": "x"}), 403,
                   "not-lead-agency", scope="agency:QNG-STC")
    assert_problem(api.post("lead", f"{path}/extension-grants", {}), 403, "not-permitted",
                   scope="office:QNG-VPUBND")
    assert_problem(api.post("office", "/v1/agencies/QNG-SYT/rename",
                            {"name": "Sở Y tế mới", "effective_on": "2021-09-01"}),
                   403, "not-permitted", scope="admin")
    assert_problem(api.get("office", "/v1/tokens"), 403, "not-permitted", scope="admin")


READS = [
    "/v1/agencies", "/v1/agencies/QNG-STC", "/v1/directives?number=768/QĐ-UBND",
    "/v1/directives/{directive}", "/v1/directives/{directive}/tasks?on=2022-01-15",
    "/v1/tasks/{task}", "/v1/events?after=0&limit=5", "/v1/feed?after=0&limit=2",
    "/v1/agencies/QNG-STC/obligations?effective_on=2022-01-01", "/v1/accountability?period=2021",
    "/v1/obligation-counts?effective_on=2022-01-01",
    "/v1/history/task/{task}", "/v1/integrity", "/v1/integrity/proof/1",
]


@pytest.mark.parametrize("path", READS)
def test_every_role_reads_and_anonymous_does_not(sqlite_api, path):
    api = sqlite_api
    path = _fill(api, path)
    for role in ROLES:
        response = api.get(role, path)
        assert response.status_code == 200, (role, response.text)
    anonymous = api.client.get(path)
    assert_problem(anonymous, 401, "unauthenticated")
    assert anonymous.headers["www-authenticate"].startswith("Bearer")


def test_token_administration_is_for_admins_only(sqlite_api):
    api = sqlite_api
    victim = api.token_ids["other"]
    for role in ROLES:
        if role == "admin":
            continue
        assert_problem(api.get(role, "/v1/tokens"), 403, "not-permitted", scope="admin")
        assert_problem(api.post(role, f"/v1/tokens/{victim}/revocation", {}), 403,
                       "not-permitted", scope="admin")
    listed = api.get("admin", "/v1/tokens").json()
    assert {t["label"] for t in listed} == set(ROLES)
    assert all("secret" not in t and "token" not in t for t in listed)
    first = api.post("admin", f"/v1/tokens/{victim}/revocation", {})
    again = api.post("admin", f"/v1/tokens/{victim}/revocation", {})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and first.json()["revoked_at"]
    assert_problem(api.get("other", "/v1/agencies"), 401, "invalid-token")
    assert_problem(api.post("admin", f"/v1/tokens/{'0' * 16}/revocation", {}), 404,
                   "unknown-token")
