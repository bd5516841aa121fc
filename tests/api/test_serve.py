"""``ledger serve`` and ``ledger token``: real processes, real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

LEDGER = str(Path(sys.executable).parent / "ledger")
PLAN = Path(__file__).resolve().parents[2] / "cli" / "samples" / \
    "quang-ngai-768-QD-UBND-2021-ke-hoach-cchc.txt"


def run(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "COLUMNS": "200"}
    return subprocess.run([LEDGER, *args], capture_output=True, text=True, env=env, timeout=120)


def create_token(url: str, *args: str) -> dict:
    done = run(url, "token", "create", "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_token_commands(store_url):
    assert run(store_url, "import", "plan", str(PLAN)).returncode == 0
    agency = create_token(store_url, "--role", "agency", "--agency", "QNG-STC",
                          "--label", "Phần mềm QLVB Sở Tài chính", "--days", "30")
    assert agency["token"].startswith(f"cdl_{agency['token_id']}_")
    assert agency["expires_at"] and agency["role"] == "agency"
    listed = run(store_url, "token", "list", "--json")
    assert [t["token_id"] for t in json.loads(listed.stdout)] == [agency["token_id"]]
    assert agency["token"] not in listed.stdout
    refused = run(store_url, "token", "create", "--role", "agency", "--agency", "QNG-NOPE")
    assert refused.returncode == 1 and "not registered" in refused.stderr
    assert run(store_url, "token", "create", "--role", "system").returncode == 1
    revoked = run(store_url, "token", "revoke", agency["token_id"])
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(run(store_url, "token", "list", "--json").stdout)[0]["revoked_at"]
    assert run(store_url, "token", "revoke", "0" * 16).returncode == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.postgres
@pytest.mark.slow
def test_ledger_serve_on_postgresql(pg_schema_url):
    url = pg_schema_url
    assert run(url, "import", "plan", str(PLAN)).returncode == 0
    office = create_token(url, "--role", "office", "--agency", "QNG-VPUBND")["token"]
    lead = create_token(url, "--role", "agency", "--agency", "QNG-STC")["token"]
    port = _free_port()
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_API_FEED_MAX_SECONDS": "2",
           "LEDGER_API_FEED_POLL_SECONDS": "0.1"}
    server = subprocess.Popen([LEDGER, "serve", "--port", str(port), "--workers", "2",
                               "--with-worker"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(300):  # wait (at most ~60 s) for the workers to come up
                if server.poll() is not None:
                    pytest.fail(f"ledger serve exited: {server.stdout.read().decode()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            ready = client.get("/readyz").json()
            assert ready["store"]["dialect"] == "postgres" and ready["store"]["head"] == 95

            as_office = {"Authorization": f"Bearer {office}", "Idempotency-Key": "vp-1864"}
            directive = {
                "number": "1864/UBND-TTHC", "issuer": "QNG-UBND", "issued_on": "2024-04-10",
                "assigning_office": "QNG-VPUBND",
                "title": "Chấn chỉnh tình trạng chậm trễ trong phối hợp giải quyết TTHC",
                "tasks": [{"ordinal": "2", "content": "Tổng hợp, báo cáo, kiến nghị",
                           "lead": "QNG-STC", "deadline": "trước ngày 31/5/2024"}],
            }
            issued = client.post("/v1/directives", json=directive, headers=as_office)
            assert issued.status_code == 201, issued.text
            retried = client.post("/v1/directives", json=directive, headers=as_office)
            assert retried.json() == issued.json()
            assert retried.headers["Idempotent-Replayed"] == "true"

            task = client.get(issued.headers["Location"], headers={
                "Authorization": f"Bearer {lead}"}).json()["tasks"][0]["id"]
            as_lead = {"Authorization": f"Bearer {lead}", "If-Match": '"1"'}
            report = client.post(f"/v1/tasks/{task}/progress-reports", headers=as_lead,
                                 json={"summary": "Đã tổng hợp ý kiến", "percent": 50})
            assert report.status_code == 200, report.text
            position = report.json()["position"]
            stale = client.post(f"/v1/tasks/{task}/progress-reports", headers=as_lead,
                                json={"summary": "Lần hai"})
            assert stale.status_code == 412
            assert stale.headers["content-type"] == "application/problem+json"

            shown = client.get(f"/v1/tasks/{task}", headers=as_lead)
            assert shown.headers["ETag"] == '"2"'
            assert shown.json()["progress"][0]["summary"] == "Đã tổng hợp ý kiến"
            feed = client.get(f"/v1/feed?after={position - 1}&limit=1", headers=as_lead)
            assert f"id: {position}\nevent: Task.ProgressReported" in feed.text
            assert "ledger_http_requests_total" in client.get("/metrics").text

            # The default page of obligations, once each process has cached it, is sent
            # before routing (service/cached_reads.py): the same answer as the routed one.
            owed = client.get("/v1/agencies/QNG-STC/obligations",
                              params={"min_position": position}, headers=as_lead)
            assert owed.status_code == 200, owed.text
            for _ in range(8):  # both processes, computed then cached
                again = client.get("/v1/agencies/QNG-STC/obligations",
                                   headers={**as_lead, "Accept-Encoding": "gzip"})
                assert again.status_code == 200, again.text
                assert again.headers["content-encoding"] == "gzip"
                assert again.headers["x-request-id"]
                assert again.json()["data"]["obligations"] == owed.json()["data"]["obligations"]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
