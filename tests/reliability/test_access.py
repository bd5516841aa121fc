"""Access control: every route × every kind of caller, with zero escapes.

Callers: the six roles of tests/api (admin, office of Quảng Ngãi, the lead agency of task
6.9, a coordinating agency, an agency with nothing to do with the task, the inspector), and
the ones that must never get in: the office and an agency of another province (Lạng Sơn),
an "office" token held by a department, expired and revoked tokens (of roles that would
otherwise be allowed), malformed tokens and no token at all. A route missing from the
matrix fails the test, so a new route cannot escape it.

Also: tokens are stored only as SHA-256 hashes (checked on the table, both stores), and a
real `ledger serve` never writes a bearer secret (or the database password) to its logs,
nor echoes one in a response.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest

from domain.reference import load_reference
from tests.api.conftest import ROLES, assert_problem
from tests.api.test_roles import READS, WRITES, _fill
from tests.behaviour.helpers import OPERATOR

# Callers who are never allowed to write anything here (on top of the roles not named in a
# route's ``allowed``), with the HTTP status they must get.
OUTSIDERS = {
    "office of another province": 403,
    "agency of another province": 403,
    "office token of a department": 403,
    "expired lead token": 401,
    "expired office token": 401,
    "revoked admin token": 401,
    "revoked lead token": 401,
    "no token": 401,
    "malformed: not a token": 401,
    "malformed: wrong scheme": 401,
    "malformed: secret of another token": 401,
    "malformed: truncated": 401,
    "malformed: unknown id": 401,
}
READERS = {*ROLES, "office of another province", "agency of another province",
           "office token of a department"}


def _register_lang_son(ledger) -> None:
    records = {r.code: r for r in load_reference("lang-son").agencies}
    for code in ("LSN-UBND", "LSN-VPUBND", "LSN-STC"):
        if not ledger.agency_exists(code):
            ledger.register_agency(OPERATOR, records[code])


def callers(api) -> dict[str, dict[str, str]]:
    """Authorization headers of every caller (empty for 'no token')."""
    _register_lang_son(api.ledger)
    store = api.svc.tokens
    soon = datetime.now(UTC) + timedelta(hours=1)
    made = {
        "office of another province": store.create(role="office", agency="LSN-VPUBND")[0],
        "agency of another province": store.create(role="agency", agency="LSN-STC")[0],
        "office token of a department": store.create(role="office", agency="QNG-SNV")[0],
        "expired lead token": store.create(role="agency", agency="QNG-STC",
                                           expires_at=soon)[0],
        "expired office token": store.create(role="office", agency="QNG-VPUBND",
                                             expires_at=soon)[0],
    }
    for name, role, agency in (("revoked admin token", "admin", None),
                               ("revoked lead token", "agency", "QNG-STC")):
        secret, info = store.create(role=role, agency=agency)
        store.revoke(info.token_id)
        made[name] = secret
    # Every token above is valid until "now" moves two hours on: only the expiring ones
    # stop working.
    base_clock = store.clock
    store.clock = lambda: base_clock() + timedelta(hours=2)
    lead = api.tokens["lead"]
    token_id = lead.split("_")[1]
    headers = {role: {"Authorization": f"Bearer {api.tokens[role]}"} for role in ROLES}
    headers.update({name: {"Authorization": f"Bearer {secret}"}
                    for name, secret in made.items()})
    headers.update({
        "no token": {},
        "malformed: not a token": {"Authorization": "Bearer ledger-admin"},
        "malformed: wrong scheme": {"Authorization": f"Basic {lead}"},
        "malformed: secret of another token": {
            "Authorization": f"Bearer cdl_{token_id}_{api.tokens['admin'].split('_', 2)[2]}"},
        "malformed: truncated": {"Authorization": f"Bearer {lead[:-1]}"},
        "malformed: unknown id": {"Authorization": f"Bearer cdl_{'0' * 16}_{'A' * 43}"},
    })
    return headers


def _state(api) -> tuple[int, list]:
    tokens = [(t.token_id, t.revoked_at) for t in api.svc.tokens.list()]
    return api.head(), tokens


def _post(api, headers, path, body):
    return api.client.post(path, json=body, headers=headers)


TOKEN_REVOCATION = "POST /v1/tokens/{token_id}/revocation"


@pytest.mark.parametrize("route", WRITES, ids=str)
def test_write_route_matrix_has_no_escape(sqlite_api, clock, route):
    api = sqlite_api
    if route.clock:
        clock.set(route.clock)
    if route.prepare:
        route.prepare(api.ledger, UUID(api.task("6.9")))
    who = callers(api)
    path = _fill(api, route.path)
    for name, headers in who.items():
        if name in route.allowed:
            continue
        before = _state(api)
        response = _post(api, headers, path, route.body)
        expected = OUTSIDERS.get(name, 403)
        assert response.status_code == expected, (name, response.status_code, response.text)
        assert_problem(response, expected, response.json()["code"])
        assert _state(api) == before, f"{name}: a refused write changed the store"
    for name in route.allowed:
        response = _post(api, who[name], path, route.body)
        assert response.status_code == route.status, (name, response.text)


def test_token_administration_matrix(sqlite_api):
    api = sqlite_api
    who = callers(api)
    victim = api.token_ids["inspector"]
    for name, headers in who.items():
        if name == "admin":
            continue
        before = _state(api)
        listed = api.client.get("/v1/tokens", headers=headers)
        revoked = _post(api, headers, f"/v1/tokens/{victim}/revocation", {})
        for response in (listed, revoked):
            expected = OUTSIDERS.get(name, 403)
            assert response.status_code == expected, (name, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        assert _state(api) == before, f"{name} changed the tokens"
    assert api.client.get("/v1/tokens", headers=who["admin"]).status_code == 200
    assert _post(api, who["admin"], f"/v1/tokens/{victim}/revocation", {}).status_code == 200


@pytest.mark.parametrize("path", READS)
def test_read_route_matrix(sqlite_api, path):
    api = sqlite_api
    who = callers(api)
    path = _fill(api, path)
    for name, headers in who.items():
        before = _state(api)
        response = api.client.get(path, headers=headers)
        if name in READERS:
            assert response.status_code == 200, (name, response.text)
        else:
            assert_problem(response, 401, response.json()["code"])
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert _state(api) == before


def test_every_operation_is_in_the_matrix(sqlite_api):
    """A route added later without a place in this matrix fails here."""
    spec = sqlite_api.client.get("/openapi.json").json()
    operations = {f"{m.upper()} {p}" for p, methods in spec["paths"].items() for m in methods}
    open_routes = {"GET /healthz", "GET /readyz", "GET /metrics"}
    covered = {TOKEN_REVOCATION, "GET /v1/tokens", *open_routes}
    templates = {
        "/v1/tasks/{task}": "/v1/tasks/{task_id}",
        "/v1/tasks/{conditional}": "/v1/tasks/{task_id}",
        "/v1/directives/{directive}": "/v1/directives/{directive_id}",
        "/v1/agencies/QNG-SYT": "/v1/agencies/{code}",
        "/v1/agencies/QNG-STTTT": "/v1/agencies/{code}",
        "/v1/agencies/QNG-SGTVT": "/v1/agencies/{code}",
        "/v1/agencies/QNG-STC": "/v1/agencies/{code}",
        "/v1/history/task/{task}": "/v1/history/{entity_type}/{entity_id}",
        "/v1/integrity/proof/1": "/v1/integrity/proof/{position}",
    }

    def template(path: str) -> str:
        path = path.split("?")[0]
        for concrete, generic in sorted(templates.items(), key=lambda kv: -len(kv[0])):
            if path.startswith(concrete):
                return generic + path[len(concrete):]
        return path

    covered |= {f"POST {template(r.path)}" for r in WRITES}
    covered |= {f"GET {template(p)}" for p in READS}
    assert operations - covered == set(), "routes missing from the access matrix"
    for route in open_routes:
        assert sqlite_api.client.get(route.split()[1]).status_code in (200, 503)


def test_tokens_are_stored_hashed(api):
    """Only SHA-256(secret) is in the table; no column holds the secret or the bearer."""
    secret, info = api.svc.tokens.create(role="agency", agency="QNG-STC", label="QLVB")
    raw_secret = secret.split("_", 2)[2]
    with api.svc.tables.transaction(commit=False) as tx:
        tx.execute(f"SELECT * FROM {api.svc.tables.tokens}")
        rows = tx.fetchall()
        tx.execute(f"SELECT secret_sha256 FROM {api.svc.tables.tokens} WHERE token_id = %s",
                   (info.token_id,))
        stored = tx.fetchone()[0]
    assert stored == hashlib.sha256(raw_secret.encode()).hexdigest()
    assert len(rows) == len(ROLES) + 1
    every_value = " ".join(str(v) for row in rows for v in row)
    for bearer in [secret, *api.tokens.values()]:
        assert bearer.split("_", 2)[2] not in every_value
    # Hashed, yet it authenticates, and revoking it is immediate.
    assert api.client.get("/v1/agencies", headers={"Authorization": f"Bearer {secret}"}
                          ).status_code == 200
    api.svc.tokens.revoke(info.token_id)
    assert_problem(api.client.get("/v1/agencies", headers={"Authorization": f"Bearer {secret}"}),
                   401, "invalid-token")


@pytest.mark.postgres
@pytest.mark.slow
def test_no_secret_in_logs_or_responses_of_a_real_server(pg_schema_url):
    from drills.common import Server, prepare_ledger

    db_password = "pg-pass-4f1c"  # trust auth ignores it; it must never be printed
    url = pg_schema_url.replace("postgresql://postgres@", f"postgresql://postgres:"
                                f"{db_password}@")
    prepared = prepare_ledger(url)
    secrets = list(prepared.tokens.values())
    agency = prepared.tokens["agency"]
    raw = [s.split("_", 2)[2] for s in secrets]
    server = Server(url, workers=2, env={"LEDGER_API_LOG_LEVEL": "debug"})
    server.start()
    answers: list[httpx.Response] = []
    try:
        server.wait_ready(path="/readyz")
        task = prepared.tasks[0]
        with httpx.Client(base_url=server.base, timeout=30) as client:
            def send(method: str, path: str, **kwargs) -> None:
                answers.append(client.request(method, path, **kwargs))

            bearer = {"Authorization": f"Bearer {agency}"}
            send("GET", "/v1/agencies", headers=bearer)
            send("POST", f"/v1/tasks/{task}/progress-reports", headers=bearer,
                 json={"summary": "Đã xong"})
            send("POST", "/v1/directives", headers=bearer, json={"number": "1/UBND"})
            send("GET", "/v1/tokens", headers=bearer)
            for header in (f"Bearer {agency}x", f"Bearer  {agency[:-2]}", f"bearer {agency}X",
                           f"Token {agency}", agency, f"Bearer {agency} {agency}"):
                send("GET", "/v1/agencies", headers={"Authorization": header})
            send("GET", f"/v1/agencies?access_token={agency}")
            send("GET", f"/v1/agencies?access_token={agency}", headers=bearer)
            send("POST", f"/v1/tasks/{task}/progress-reports", headers={
                **bearer, "X-Request-ID": agency}, json={"summary": "Lần hai"})
    finally:
        server.stop()
    output = server.output()
    statuses = [a.status_code for a in answers]
    assert statuses[:4] == [200, 200, 422, 403], statuses
    assert all(s == 401 for s in statuses[4:10]), statuses
    assert '"route":"/v1/agencies"' in output  # the access log is there...
    assert "secret_sha256" not in output
    for text in raw:
        assert text not in output  # ...and holds no secret
        for answer in answers:
            assert text not in answer.text and text not in str(answer.headers)
    assert db_password not in output
    assert "***" in output  # the store URL is printed redacted
