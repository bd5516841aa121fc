"""compose.yaml and the Dockerfile, checked without a Docker engine: parsed, their settings
resolved the way compose resolves them, the store URL they build read by our own parser,
and the health-check commands they name actually run against a real `ledger serve`."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from domain.persistence.url import parse_store_url
from service.healthcheck import verdict

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text("utf-8"))
SERVICES = COMPOSE["services"]
_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$ (enough for our file)."""
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        name, op, arg = match.groups()
        given = env.get(name)
        if op in (":-", "-"):
            return given if given not in (None, "") else arg
        if op in (":?", "?"):
            if not given:
                raise KeyError(f"{name}: {arg}")
            return given
        return given or ""

    return _VARIABLE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in (ROOT / "Dockerfile").read_text("utf-8").splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip())
            for text in logical]


def test_compose_runs_postgres_the_api_and_the_worker():
    assert set(SERVICES) == {"postgres", "api", "worker"}
    assert SERVICES["postgres"]["image"] == "postgres:16"
    for name, service in SERVICES.items():
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") == "unless-stopped", name
    for name in ("api", "worker"):
        depends = SERVICES[name]["depends_on"]
        assert depends["postgres"] == {"condition": "service_healthy"}, name
    assert "api" not in SERVICES["worker"]["depends_on"]  # its health is its own
    assert SERVICES["api"]["build"] == "." and (ROOT / "Dockerfile").exists()
    assert SERVICES["worker"]["image"] == SERVICES["api"]["image"]
    assert SERVICES["worker"]["command"] == ["ledger", "worker"]


def test_the_named_volume_holds_the_database():
    volumes = COMPOSE["volumes"]
    mounts = SERVICES["postgres"]["volumes"]
    assert mounts == ["ledger-pgdata:/var/lib/postgresql/data"]
    assert "ledger-pgdata" in volumes


def test_settings_come_from_the_environment_and_build_a_store_url_we_read():
    env = {"POSTGRES_PASSWORD": "mat-khau-123"}
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(SERVICES["postgres"]["environment"], {})
    database = interpolate(SERVICES["postgres"]["environment"], env)
    for name in ("api", "worker"):
        settings = interpolate(SERVICES[name]["environment"], env)
        store = parse_store_url(settings["LEDGER_DATABASE_URL"])
        assert store.dialect == "postgres"
        assert store.env["POSTGRES_HOST"] == "postgres"  # the compose service
        assert store.env["POSTGRES_USER"] == database["POSTGRES_USER"]
        assert store.env["POSTGRES_PASSWORD"] == database["POSTGRES_PASSWORD"]
        assert store.env["POSTGRES_DBNAME"] == database["POSTGRES_DB"]
        assert store.env["POSTGRES_SCHEMA"] == "quang_ngai"
        assert "mat-khau-123" not in store.redacted
    custom = interpolate(SERVICES["api"]["environment"], {
        **env, "POSTGRES_USER": "vpubnd", "POSTGRES_DB": "chidao", "LEDGER_SCHEMA": "lang_son"})
    store = parse_store_url(custom["LEDGER_DATABASE_URL"])
    assert (store.env["POSTGRES_USER"], store.env["POSTGRES_DBNAME"],
            store.env["POSTGRES_SCHEMA"]) == ("vpubnd", "chidao", "lang_son")


def test_the_api_runs_several_workers():
    command = interpolate(SERVICES["api"]["command"], {})
    assert command[:2] == ["ledger", "serve"]
    assert int(command[command.index("--workers") + 1]) >= 2
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert int(interpolate(SERVICES["api"]["command"], {"LEDGER_API_WORKERS": "8"})[
        command.index("--workers") + 1]) == 8


def test_the_dockerfile_builds_a_slim_non_root_image_that_serves():
    steps = dockerfile_instructions()
    kinds = [kind for kind, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert kinds.count("FROM") == 1
    users = [args for kind, args in steps if kind == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    installs = [i for i, (kind, args) in enumerate(steps) if kind == "RUN" and
                "pip install" in args]
    assert installs and installs[-1] < kinds.index("USER") < kinds.index("CMD")
    assert json.loads(dict(steps)["CMD"]) == ["ledger", "serve"]
    env = " ".join(args for kind, args in steps if kind == "ENV")
    assert "LEDGER_API_HOST=0.0.0.0" in env and "LEDGER_API_PORT=8000" in env
    assert dict(steps)["EXPOSE"] == "8000"
    health = dict(steps)["HEALTHCHECK"]
    assert "--interval=" in health and "--timeout=" in health
    assert json.loads(health.split("CMD", 1)[1]) == ["python", "-m", "service.healthcheck"]
    for kind, args in steps:
        if kind == "COPY":
            source = shlex.split(args)[0]
            assert (ROOT / source).exists(), source
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
               if line.strip() and not line.startswith("#")]
    assert {".git", ".venv", "tests"} <= set(ignored)
    # What the image installs must be what pyproject.toml packages.
    assert "pyproject.toml" not in ignored and "README.md" not in ignored


def test_the_health_check_commands_work_against_a_real_server(tmp_path):
    from drills.common import Server

    url = f"sqlite:///{tmp_path}/ledger.db"
    server = Server(url, workers=1)
    image_check = json.loads(dict(dockerfile_instructions())["HEALTHCHECK"].split("CMD", 1)[1])
    worker_check = interpolate(SERVICES["worker"]["healthcheck"]["test"][1:],
                               {"LEDGER_WORKER_MAX_LAG": "5"})
    ledger_bin = str(Path(sys.executable).parent / "ledger")

    def run(command: list[str]) -> subprocess.CompletedProcess:
        command = [{"python": sys.executable, "ledger": ledger_bin}.get(command[0], command[0]),
                   *command[1:]]
        return subprocess.run(command, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "LEDGER_API_PORT": str(server.port),
                                   "LEDGER_DATABASE_URL": url})

    assert run(image_check).returncode == 1  # nothing listens yet
    server.start()
    try:
        server.wait_ready()
        assert run(image_check).returncode == 0
    finally:
        server.stop()
    assert run(image_check).returncode == 1
    # The worker's check reads the store: unhealthy while the projections lag behind...
    imported = run([ledger_bin, "import", "plan", str(ROOT / "cli" / "samples" /
                                                      "quang-ngai-768-QD-UBND-2021-ke-hoach-cchc.txt")])
    assert imported.returncode == 0, imported.stderr
    behind = run(worker_check)
    assert behind.returncode == 1 and "events behind (allowed: 5)" in behind.stderr
    # ...healthy once a worker (here: a catching-up read) has folded the journal.
    assert run([ledger_bin, "obligations", "--agency", "QNG-SNV"]).returncode == 0
    assert run(worker_check).returncode == 0


def test_the_worker_health_verdict():
    ready = {"status": "ready", "projections": {"available": True, "lag": 12}}
    assert verdict(200, json.dumps(ready).encode(), 100) is None
    assert "12 events behind" in verdict(200, json.dumps(ready).encode(), 10)
    assert "unknown" in verdict(200, b'{"projections": {"available": false}}', 10)
    assert verdict(503, b"{}", 10) == "HTTP 503"
    assert verdict(200, b"<html>", None) is None
    assert "not the JSON" in verdict(200, b"<html>", 10)


def _compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return done.returncode == 0


@pytest.mark.skipif(not _compose_available(), reason="no `docker compose` on this machine")
def test_docker_compose_config_accepts_the_file():
    done = subprocess.run(["docker", "compose", "config", "-q"], cwd=ROOT, timeout=60,
                          capture_output=True, text=True,
                          env={**os.environ, "POSTGRES_PASSWORD": "x"})
    assert done.returncode == 0, done.stderr
