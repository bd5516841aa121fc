"""Bad input over HTTP: every case is answered 4xx with problem+json, never 5xx, and
nothing is stored. Raw bytes are sent (not ``json=``) so that what reaches the service is
exactly what a broken or hostile client would send. Runs on both stores."""

from __future__ import annotations

import json
import os
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import assert_problem
from tests.api.test_roles import WRITES, _fill

NFC = "Đã góp ý dự thảo báo cáo"
NFD = unicodedata.normalize("NFD", NFC)
MIXED = NFC[:8] + unicodedata.normalize("NFD", NFC[8:])  # NFC and NFD in one string

# (name, raw body, expected status, expected code) for POST .../progress-reports
RAW_BODIES = [
    ("deeply nested arrays", b"[" * 100_000 + b"]" * 100_000, 400, "json-too-deep"),
    ("deeply nested objects", b'{"summary": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001,
     400, "json-too-deep"),
    ("truncated JSON", '{"summary": "Đã'.encode(), 400, "malformed-json"),
    ("invalid UTF-8: a lone continuation byte", b'{"summary": "\x80"}', 400, "malformed-json"),
    ("invalid UTF-8: truncated sequence", b'{"summary": "\xe1\xbb"}', 400, "malformed-json"),
    ("invalid UTF-8: overlong slash", b'{"summary": "\xc0\xaf"}', 400, "malformed-json"),
    ("invalid UTF-8: Windows-1258 text",
     unicodedata.normalize("NFD", '{"summary": "Đã xong"}').encode("cp1258"), 400,
     "malformed-json"),
    ("UTF-16 text", '{"summary": "Đã xong"}'.encode("utf-16"), 400, "malformed-json"),
    ("unpaired surrogate escape", b'{"summary": "\\ud800 x"}', 400, "malformed-json"),
    ("duplicate key", '{"summary": "một", "summary": "hai"}'.encode(), 400, "duplicate-json-key"),
    ("duplicate key, nested", b'{"summary": "x", "source_document": {"number": "1/BC-STC", '
     b'"number": "2/BC-STC"}}', 400, "duplicate-json-key"),
    ("NaN", b'{"summary": "x", "percent": NaN}', 400, "malformed-json"),
    ("Infinity", b'{"summary": "x", "percent": -Infinity}', 400, "malformed-json"),
    ("an integer of 5000 digits", b'{"summary": "x", "percent": ' + b"9" * 5000 + b"}", 400,
     "malformed-json"),
    ("empty body", b"", 422, "validation-error"),
    ("JSON null", b"null", 422, "validation-error"),
    ("a JSON array", b'[{"summary": "x"}]', 422, "validation-error"),
    ("a JSON string", b'"summary"', 422, "validation-error"),
]


def _task_path(api, ordinal="6.9", action="progress-reports"):
    return f"/v1/tasks/{api.task(ordinal)}/{action}"


def _send(api, path, body: bytes, role="lead", content_type="application/json", **headers):
    if content_type is not None:
        headers["Content-Type"] = content_type
    return api.client.post(path, content=body, headers=api.auth(role, **headers))


def test_raw_bodies_are_refused_precisely_and_store_nothing(api):
    path = _task_path(api)
    for name, body, status, code in RAW_BODIES:
        head = api.head()
        response = _send(api, path, body)
        assert response.status_code == status, (name, response.text[:300])
        assert_problem(response, status, code)
        assert api.head() == head, f"{name}: something was stored"
    # Nesting inside a string is text, not structure; a BOM before the JSON is tolerated.
    text = "[" * 40 + " Đã góp ý " + "{" * 40
    ok = _send(api, path, b"\xef\xbb\xbf" + json.dumps({"summary": text}).encode())
    assert ok.status_code == 200, ok.text
    assert api.ledger.task(api.ledger.task(_uuid(api)).id).progress[-1]["summary"] == text


def _uuid(api):
    from uuid import UUID

    return UUID(api.task("6.9"))


@pytest.mark.parametrize("content_type", [
    None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/xml", "text/json", "application/jsonx", "*/*",
])
def test_wrong_content_types_are_415(sqlite_api, content_type):
    api = sqlite_api
    head = api.head()
    response = _send(api, _task_path(api), b'{"summary": "x"}', content_type=content_type)
    assert_problem(response, 415, "unsupported-media-type", field="body")
    assert api.head() == head


def test_json_content_types_with_parameters_are_accepted(sqlite_api):
    api = sqlite_api
    for content_type in ("application/json; charset=utf-8", "Application/JSON",
                         "application/problem+json"):
        response = _send(api, _task_path(api), json.dumps({"summary": "Đã xong"}).encode(),
                         content_type=content_type)
        assert response.status_code == 200, (content_type, response.text)
    gzip = _send(api, _task_path(api), b'{"summary": "x"}', **{"Content-Encoding": "gzip"})
    assert_problem(gzip, 415, "unsupported-media-type")


TEXT_CASES = [
    ("NFD", NFD, "text-not-nfc"),
    ("mixed NFC and NFD", MIXED, "text-not-nfc"),
    ("NUL", "Đã\x00xong", "validation-error"),
    ("escape", "Đã\x1b[31mxong", "validation-error"),
    ("C1 control (mojibake)", "Đã\x85xong", "validation-error"),
    ("right-to-left override", "Đã \u202exong", "validation-error"),
    ("bidi isolate", "Đã \u2066xong\u2069", "validation-error"),
    ("noncharacter", "Đã xong\uffff", "validation-error"),
    ("only spaces", "   ", "validation-error"),
]


def test_text_that_is_not_clean_nfc_is_refused_wherever_it_appears(api, clock):
    task = _task_path(api)
    clock.set("2024-04-15 09:00")
    for name, value, code in TEXT_CASES:
        head = api.head()
        targets = [
            ("lead", task, {"summary": value}, "summary"),
            ("lead", task, {"summary": "x", "source_document": {"number": value}},
             None),
            ("office", "/v1/directives", {
                "number": "1864/UBND-TTHC", "issuer": "QNG-UBND", "issued_on": "2024-04-10",
                "assigning_office": "QNG-VPUBND", "title": "Chấn chỉnh",
                "tasks": [{"ordinal": "1", "content": value, "lead": "QNG-STNMT",
                           "deadline": "trước ngày 31/5/2024"}]}, None),
            ("admin", "/v1/agencies/QNG-SYT/heads",
             {"person": value, "position": "Giám đốc", "from_on": "2021-01-01"}, "person"),
        ]
        for role, path, body, field in targets:
            response = api.post(role, path, body)
            assert response.status_code == 422, (name, path, response.text)
            problem = assert_problem(response, 422, code)
            if field:
                assert problem["field"] == field, (name, problem)
        assert api.head() == head, f"{name}: something was stored"


DATE_CASES = [
    ("year 0", "0000-01-01"), ("year 1", "0001-01-01"), ("year 9999", "9999-12-31"),
    ("year 10000", "10000-01-01"), ("31 February", "2021-02-31"),
    ("29 February of a common year", "2021-02-29"), ("month 13", "2021-13-01"),
    ("dd/mm/yyyy", "31/12/2021"), ("a moment", "2021-12-31T00:00:00"), ("a number", 20211231),
    ("negative year", "-2021-12-31"), ("empty", ""), ("before 1945", "1944-12-31"),
    ("after 2100", "2101-01-01"),
]


# as_of is a moment: "31/12/2021", "20211231" and the end of 31/12/1944 (= 1/1/1945 00:00)
# are moments it accepts.
AS_OF_ACCEPTS = {"dd/mm/yyyy", "a moment", "a number", "before 1945"}


def test_dates_out_of_range_or_malformed_are_422(api):
    task = _task_path(api)
    for name, value in DATE_CASES:
        head = api.head()
        for role, path, body, field in [
            ("lead", task, {"summary": "x", "reported_on": value}, "reported_on"),
            ("lead", _task_path(api, action="extension-requests"),
             {"requested_due": value, "reason": "Chờ ý kiến"}, "requested_due"),
            ("office", _task_path(api, "5.5", "deadline-trigger"),
             {"due_on": value, "basis": "Hướng dẫn của Bộ"}, "due_on"),
            ("admin", "/v1/agencies/QNG-SYT/rename",
             {"name": "Sở Y tế mới", "effective_on": value}, "effective_on"),
            ("lead", task, {"summary": "x", "source_document": {"number": "1/BC-STC",
                                                               "issued_on": value}},
             "source_document.issued_on"),
        ]:
            response = api.post(role, path, body)
            assert_problem(response, 422, "validation-error", field=field)
        for query in (f"/v1/tasks/{api.task('6.9')}?on={value}",
                      f"/v1/directives/{api.plan.id}/tasks?on={value}",
                      f"/v1/agencies/QNG-STC/obligations?effective_on={value}",
                      f"/v1/obligation-counts?effective_on={value}",
                      f"/v1/obligation-counts?as_of={value}",
                      f"/v1/accountability?period=2021&as_of={value}"):
            if value == "" or ("as_of" in query and name in AS_OF_ACCEPTS):
                continue  # "not given"; as_of takes a moment, dd/mm/yyyy or ISO basic
            assert_problem(api.get("inspector", query), 422, "validation-error")
        assert api.head() == head, f"{name}: something was stored"


def test_the_ledger_itself_refuses_implausible_dates(ledger):
    """Not only HTTP: the domain refuses a date outside its calendar from any caller."""
    from datetime import date

    from domain.errors import ValidationError
    from tests.behaviour.helpers import OPERATOR, agency, import_plan

    import_plan(ledger)
    head = ledger.recorder.max_notification_id()
    with pytest.raises(ValidationError) as refused:
        ledger.appoint_head(OPERATOR, "QNG-STC", "Nguyễn Văn A", "Giám đốc", date(1, 1, 1))
    assert refused.value.field == "from_on"
    plan = ledger.find_directive("768/QĐ-UBND")
    from domain.ids import task_id

    with pytest.raises(ValidationError) as refused:
        ledger.report_progress(agency("QNG-STC"), task_id(plan.id, "6.9"), summary="x",
                               reported_on=date(2021, 8, 25))
    assert "before the task was assigned" in str(refused.value)
    assert ledger.recorder.max_notification_id() == head


WRONG_TYPES = [
    ({"summary": 42}, "summary"),
    ({"summary": ["Đã xong"]}, "summary"),
    ({"summary": None}, "summary"),
    ({"summary": "x", "percent": "40"}, "percent"),
    ({"summary": "x", "percent": 40.0}, "percent"),
    ({"summary": "x", "percent": 40.5}, "percent"),
    ({"summary": "x", "percent": True}, "percent"),
    ({"summary": "x", "percent": -1}, "percent"),
    ({"summary": "x", "percent": 2**70}, "percent"),
    ({"summary": "x", "occurrence": 2022}, "occurrence"),
    ({"summary": "x", "source_document": "68/BC-STC"}, "source_document"),
    ({"summary": {"text": "x"}}, "summary"),
]


def test_numbers_as_strings_and_strings_as_numbers_are_422(api):
    path = _task_path(api)
    head = api.head()
    for body, field in WRONG_TYPES:
        assert_problem(api.post("lead", path, body), 422, "validation-error", field=field)
    directive = {"number": 1864, "issuer": "QNG-UBND", "issued_on": "2024-04-10",
                 "title": "x", "tasks": [{"ordinal": 2, "content": "x", "lead": "QNG-STC",
                                          "deadline": "Quý II năm 2024"}]}
    problem = assert_problem(api.post("office", "/v1/directives", directive), 422,
                             "validation-error")
    assert {e["field"] for e in problem["errors"]} >= {"number", "tasks[0].ordinal"}
    assert_problem(api.post("office", "/v1/directives", {**directive, "number": "1/UBND",
                                                         "plan_last_year": "2025"}),
                   422, "validation-error")
    assert_problem(api.post("admin", "/v1/agencies/QNG-STC/heads", {
        "person": "A", "position": "B", "from_on": "2021-01-01", "acting": "true"}), 422,
        "validation-error", field="acting")
    assert api.head() == head


QUERY_CASES = [
    "/v1/events?limit=0", "/v1/events?limit=-1", "/v1/events?limit=10001",
    "/v1/events?limit=99999999999999999999999999", "/v1/events?limit=1e3",
    "/v1/events?limit=abc", "/v1/events?after=-1", "/v1/events?after=4611686018427387905",
    "/v1/events?after=99999999999999999999999999999", "/v1/events?after=1.5",
    "/v1/feed?limit=0", "/v1/feed?after=-5", "/v1/feed?limit=1000001",
    "/v1/agencies/QNG-STC/obligations?min_position=-1",
    "/v1/agencies/QNG-STC/obligations?min_position=4611686018427387905",
    "/v1/accountability?period=2021&as_of=not-a-time",
    "/v1/obligation-counts?min_position=-1", "/v1/obligation-counts?effective_on=2022-13-01",
    "/v1/accountability?period=2021-Q5", "/v1/accountability",
    "/v1/history/task/not-a-uuid", "/v1/history/agency/%00", "/v1/history/folder/x",
    "/v1/tasks/not-a-uuid", "/v1/directives", "/v1/directives?number=",
    "/v1/directives?number=" + "9" * 101,
]


def test_bad_query_parameters_are_422(sqlite_api):
    api = sqlite_api
    for path in QUERY_CASES:
        response = api.get("inspector", path)
        assert response.status_code == 422, (path, response.text)
        assert_problem(response, 422, "validation-error")
    # The largest accepted values answer normally.
    top = api.get("inspector", "/v1/events?after=4611686018427387904&limit=10000")
    assert top.status_code == 200 and top.json()["events"] == []
    assert len(api.get("inspector", "/v1/events?limit=10000").json()["events"]) == api.head()
    assert_problem(api.client.get("/v1/feed", headers=api.auth(
        "inspector", **{"Last-Event-ID": "9" * 19})), 422, "validation-error")


def _json_values():
    text = st.text(st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
        [NFD, MIXED, "\u202e", "\x00", "0000-01-01", "9999-12-31", "2021-02-31", ""])
    scalars = (st.none() | st.booleans() | st.integers() | text
               | st.floats(allow_nan=False, allow_infinity=False))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        text, inner, max_size=3), max_leaves=8)


FUZZ_EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "0") or 0) or 15


@pytest.mark.parametrize("route", WRITES, ids=str)
def test_mutated_valid_bodies_never_fail_the_service(sqlite_api, clock, route):
    """Take each write route's valid body (as the allowed role sends it) and replace one
    field, add one, or drop one, with arbitrary JSON: 2xx stores, anything else stores
    nothing and is 4xx problem+json."""
    api = sqlite_api
    if route.clock:
        clock.set(route.clock)
    role = route.allowed[0]
    path = _fill(api, route.path)
    keys = sorted(route.body) or ["note"]

    @given(key=st.sampled_from([*keys, "unexpected"]), value=_json_values(),
           drop=st.booleans())
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(key, value, drop):
        body = dict(route.body)
        if drop and key in body:
            del body[key]
        else:
            body[key] = value
        head = api.head()
        response = api.post(role, path, body)
        assert response.status_code < 500, response.text
        if response.is_success:
            assert api.head() > head
        else:
            assert response.headers["content-type"] == "application/problem+json"
            assert api.head() == head, response.text

    check()
