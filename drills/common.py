"""What the drills share: a disposable PostgreSQL cluster, a `ledger serve` process that can
be killed, a ledger prepared with the plan 768/QĐ-UBND and tokens, a write load whose
client keeps a log of every acknowledged write, and the check of that log against the
journal.

The write load is what an agency system does: progress reports (one event each) and
directives with three tasks (six events in one transaction), each with its own
Idempotency-Key. A write is *acknowledged* when the client received its 2xx answer; a
write whose answer was lost (connection reset, 503) is *in doubt* and is retried later
with the same key, which must either replay the stored answer or store it now: never
twice. The verdict compares the client's log with the journal.
"""

from __future__ import annotations

import glob
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
LEDGER = str(Path(sys.executable).parent / "ledger")
# Where a Server or Worker not given a log path keeps its output (None: the system's temporary
# directory, where a drill run from the command line leaves it to be read). The test suite
# points it at pytest's temporary directory, which keeps the last runs' and drops older ones:
# each run had left about ten logs in /tmp for good.
LOG_DIR: Path | None = None
DEFAULT_PG = os.environ.get("LEDGER_TEST_POSTGRES_URL",
                            "postgresql://postgres@127.0.0.1:5432/ledger_test")
DRILL_AGENCY = "QNG-STC"  # the agency whose system reports progress in the drills
DRILL_TASKS = 8
PLAN_FILE = "quang-ngai-768-QD-UBND-2021-ke-hoach-cchc.txt"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(message: str) -> None:
    print(message, flush=True)


# -- PostgreSQL ------------------------------------------------------------------------------


def postgres_bin(name: str) -> str | None:
    """A PostgreSQL server binary (initdb, pg_ctl): the newest under /usr/lib/postgresql, or
    on PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return found[-1] if found else shutil.which(name)


class Cluster:
    """A throw-away PostgreSQL cluster (initdb into a temporary directory, its own port).
    Never the shared server: drills stop and start this one at will."""

    def __init__(self) -> None:
        self.initdb = postgres_bin("initdb")
        self.pg_ctl = postgres_bin("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            raise RuntimeError("initdb/pg_ctl not found (install the PostgreSQL server)")
        self.root = Path(tempfile.mkdtemp(prefix="ledger-drill-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stderr or done.stdout}")

    def create(self) -> Cluster:
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        self.start()
        return self

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=200")
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, dbname: str = "postgres", schema: str | None = None,
            password: str | None = None) -> str:
        auth = f"postgres:{password}" if password else "postgres"
        query = f"?schema={schema}" if schema else ""
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}{query}"

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except Exception:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def fresh_schema(base_url: str = DEFAULT_PG, prefix: str = "drill") -> tuple[str, Any]:
    """A new schema on an existing server (the crash drill never stops the server):
    (its store URL, a function that drops it)."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(base_url)
    with psycopg.connect(urlunsplit(parts._replace(query="")), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(urlunsplit(parts._replace(query="")), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    sep = "&" if parts.query else ""
    return urlunsplit(parts._replace(query=f"{parts.query}{sep}schema={schema}")), drop


# -- the ledger under test -------------------------------------------------------------------


@dataclass
class Prepared:
    url: str
    tokens: dict[str, str]
    tasks: list[str]  # ids of tasks led by DRILL_AGENCY, open, due once


def prepare_ledger(url: str) -> Prepared:
    """The plan 768/QĐ-UBND, a drill directive with DRILL_TASKS tasks led by QNG-STC, and
    tokens for the office and QNG-STC (created as the operator would, stored hashed)."""
    from importlib import resources

    from domain.actors import system_context
    from domain.application import Ledger
    from domain.ids import task_id
    from domain.plan_annex import parse_plan_annex
    from domain.specs import DirectiveSpec, TaskSpec
    from service.storage import ServiceTables
    from service.tokens import TokenStore

    operator = system_context("drill")
    plan = resources.files("cli.samples").joinpath(PLAN_FILE).read_text("utf-8")
    ledger = Ledger(url)
    try:
        annex = parse_plan_annex(plan, source=PLAN_FILE)
        ledger.issue_directive(operator, annex.spec, register_agencies=annex.reference.agencies)
        issued = date.today() - timedelta(days=30)
        spec = DirectiveSpec(
            number="9000/UBND-TTHC", issuer="QNG-UBND", assigning_office="QNG-VPUBND",
            issued_on=issued, title="Kế hoạch diễn tập ghi nhận báo cáo",
            tasks=tuple(TaskSpec(ordinal=str(i), content=f"Nhiệm vụ diễn tập {i}",
                                 lead=DRILL_AGENCY, deadline="trước ngày 31/12/2099")
                        for i in range(1, DRILL_TASKS + 1)),
        )
        directive = ledger.issue_directive(operator, spec)
        tables = ServiceTables(ledger)
        tables.create()
        store = TokenStore(tables)
        tokens = {
            "office": store.create(role="office", agency="QNG-VPUBND", label="drill")[0],
            "agency": store.create(role="agency", agency=DRILL_AGENCY, label="drill")[0],
            "inspector": store.create(role="inspector", label="drill")[0],
        }
        tasks = [str(task_id(directive.entity_id, str(i)))
                 for i in range(1, DRILL_TASKS + 1)]
    finally:
        ledger.close()
    return Prepared(url=url, tokens=tokens, tasks=tasks)


class Server:
    """`ledger serve` in its own process group, so kill -9 reaches every worker."""

    def __init__(self, url: str, *, workers: int = 2, log_path: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.url = url
        self.workers = workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="ledger-serve-", suffix=".log",
                                                          dir=LOG_DIR)[1])
        self.env = {**os.environ, "LEDGER_DATABASE_URL": url, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # closed by kill9()/stop()
        self.process = subprocess.Popen(
            [LEDGER, "serve", "--port", str(self.port), "--workers", str(self.workers)],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90, path: str = "/healthz") -> float:
        """Seconds until the server answers ``path`` with 200."""
        began = time.monotonic()
        with httpx.Client(base_url=self.base, timeout=5) as client:
            while time.monotonic() - began < timeout:
                if self.process and self.process.poll() is not None:
                    raise RuntimeError(f"ledger serve exited ({self.process.returncode}); "
                                       f"log: {self.log_path}")
                try:
                    if client.get(path).status_code == 200:
                        return time.monotonic() - began
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"ledger serve not ready after {timeout}s; log: {self.log_path}")

    def kill9(self) -> None:
        """kill -9 the whole process group (the supervisor and every worker)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self._log.close()
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill9()
            return
        except ProcessLookupError:
            pass
        self._log.close()
        self.process = None

    def output(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")


class Worker(Server):
    """`ledger worker` (the projection runner) in its own process group."""

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # closed by kill9()/stop()
        self.process = subprocess.Popen(
            [LEDGER, "worker", "--poll", "0.2", "--checkpoint-every", "0"],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


# -- the write load and its client-side log --------------------------------------------------


@dataclass
class Write:
    key: str
    kind: str  # "progress" | "directive"
    path: str
    body: dict[str, Any]
    token: str
    marker: str  # text that identifies this write's events in the journal


@dataclass
class Outcome:
    write: Write
    status: int | None = None  # final HTTP status, None while in doubt
    answer: dict[str, Any] | None = None
    attempts: int = 0
    replayed: bool = False


@dataclass
class LoadLog:
    """The client's log: what it sent, what it got. Thread-safe."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    problems: list[str] = field(default_factory=list)
    # (sent, answered, status or error name) of every HTTP attempt, monotonic seconds
    timeline: list[tuple[float, float, int | str]] = field(default_factory=list)

    def acknowledged(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.status is not None and o.status < 300]

    def in_doubt(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.status is None]


_numbers = itertools.count(10_000)  # directive numbers, unique within a drill process


def make_write(prepared: Prepared, n: int, rng: random.Random, run: str) -> Write:
    key = f"{run}-{n:06d}"
    marker = f"drill {key}"
    if rng.random() < 0.2:
        number = f"{next(_numbers)}/UBND-TTHC"
        issued = (date.today() - timedelta(days=1)).isoformat()
        body = {"number": number, "issuer": "QNG-UBND", "assigning_office": "QNG-VPUBND",
                "issued_on": issued, "title": marker,
                "tasks": [{"ordinal": str(i), "content": f"{marker} / {i}", "lead": DRILL_AGENCY,
                           "deadline": "Quý IV năm 2099"} for i in (1, 2, 3)]}
        return Write(key, "directive", "/v1/directives", body, prepared.tokens["office"],
                     marker)
    task = rng.choice(prepared.tasks)
    return Write(key, "progress", f"/v1/tasks/{task}/progress-reports",
                 {"summary": marker, "percent": rng.randint(0, 100)},
                 prepared.tokens["agency"], marker)


def send(client: httpx.Client, load: LoadLog, write: Write, *,
         retry_conflicts: int = 50) -> Outcome:
    """Send one write (retrying 409 races with the same key); record what came back."""
    with load.lock:
        outcome = load.outcomes.setdefault(write.key, Outcome(write))
    headers = {"Authorization": f"Bearer {write.token}", "Idempotency-Key": write.key}
    for _ in range(retry_conflicts):
        outcome.attempts += 1
        began = time.monotonic()
        try:
            response = client.post(write.path, json=write.body, headers=headers)
        except httpx.TransportError as exc:
            with load.lock:
                load.statuses["connection-error"] += 1
                load.timeline.append((began, time.monotonic(), type(exc).__name__))
            return outcome  # in doubt
        with load.lock:
            load.statuses[response.status_code] += 1
            load.timeline.append((began, time.monotonic(), response.status_code))
        if response.status_code == 409 and response.json().get("code") == "concurrent-write":
            continue
        if response.status_code >= 500 or response.status_code == 429:
            check_problem(load, response, expect_retry_after=True)
            return outcome  # in doubt: the store may or may not have it
        if response.status_code >= 300:
            check_problem(load, response)
            with load.lock:
                load.problems.append(f"{write.key}: refused {response.status_code} "
                                     f"{response.text[:200]}")
            outcome.status = response.status_code
            return outcome
        outcome.status = response.status_code
        outcome.answer = response.json()
        outcome.replayed = response.headers.get("Idempotent-Replayed") == "true"
        return outcome
    return outcome


def check_problem(load: LoadLog, response: httpx.Response, *,
                  expect_retry_after: bool = False) -> None:
    problems = []
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        problems.append(f"{response.status_code} without problem+json")
    if expect_retry_after and not response.headers.get("Retry-After", "").isdigit():
        problems.append(f"{response.status_code} without Retry-After")
    if response.status_code >= 500 and response.status_code != 503:
        problems.append(f"{response.status_code}: {response.text[:200]}")
    if problems:
        with load.lock:
            load.problems.extend(problems)


class LoadRunner:
    """``writers`` threads sending writes until stopped."""

    def __init__(self, base: str, prepared: Prepared, load: LoadLog, *, writers: int,
                 seed: int, run: str, timeout: float = 30) -> None:
        self.base = base
        self.prepared = prepared
        self.load = load
        self.writers = writers
        self.rng = random.Random(seed)
        self.run = run
        self.timeout = timeout
        self.stop_event = threading.Event()
        self.counter = 0
        self.counter_lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def _next(self) -> Write:
        with self.counter_lock:
            self.counter += 1
            return make_write(self.prepared, self.counter, self.rng, self.run)

    def _loop(self) -> None:
        with httpx.Client(base_url=self.base, timeout=self.timeout) as client:
            write = self._next()
            while not self.stop_event.is_set():
                outcome = send(client, self.load, write)
                if outcome.status is None:
                    # In doubt (503, connection lost): retry the same write with its key,
                    # as a client honouring Retry-After would, without spinning.
                    time.sleep(0.1)
                    continue
                write = self._next()

    def start(self) -> None:
        self.stop_event.clear()
        self.threads = [threading.Thread(target=self._loop, daemon=True)
                        for _ in range(self.writers)]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=self.timeout + 30)


def resolve_in_doubt(base: str, load: LoadLog, *, rounds: int = 20) -> int:
    """Retry every in-doubt write with its key until it has an answer; how many."""
    doubtful = load.in_doubt()
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(rounds):
            pending = [o for o in doubtful if o.status is None]
            if not pending:
                break
            for outcome in pending:
                send(client, load, outcome.write)
            time.sleep(0.2)
    return len(doubtful)


# -- the verdict -----------------------------------------------------------------------------


@dataclass
class Verdict:
    figures: dict[str, Any]
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


def read_all_events(url: str) -> list[Any]:
    from domain.application import Ledger, read_journal

    ledger = Ledger(url)
    try:
        entries, after = [], 0
        while True:
            page = read_journal(ledger, after=after, limit=1000)
            if not page:
                return entries
            entries.extend(page)
            after = page[-1].position
    finally:
        ledger.close()


def verify(url: str, load: LoadLog) -> Verdict:
    """Every acknowledged write is in the journal exactly as acknowledged; no write is
    stored twice; every directive is whole; every aggregate's versions are contiguous."""
    entries = read_all_events(url)
    failures: list[str] = list(load.problems)
    by_position = {e.position: e for e in entries}
    by_marker: dict[str, list[Any]] = defaultdict(list)
    versions: dict[str, list[int]] = defaultdict(list)
    for entry in entries:
        versions[str(entry.entity_id)].append(entry.version)
        text = entry.data.get("summary") or entry.data.get("title")
        if isinstance(text, str) and text.startswith("drill "):
            by_marker[text].append(entry)
        content = entry.data.get("content")
        if entry.event_type == "Task.Assigned" and isinstance(content, str) and \
                content.startswith("drill "):
            by_marker[content.rsplit(" / ", 1)[0] + " /tasks"].append(entry)

    acknowledged = load.acknowledged()
    for outcome in acknowledged:
        write, answer = outcome.write, outcome.answer or {}
        for position in answer.get("positions", []):
            if position not in by_position:
                failures.append(f"{write.key}: acknowledged position {position} is missing")
        stored = {(str(by_position[p].entity_id), by_position[p].version)
                  for p in answer.get("positions", []) if p in by_position}
        if (answer.get("entity_id"), answer.get("version")) not in stored:
            failures.append(f"{write.key}: acknowledged as {answer.get('entity_id')} "
                            f"v{answer.get('version')}, which is not at its positions "
                            f"{answer.get('positions')}")
    for outcome in load.outcomes.values():
        found = by_marker.get(outcome.write.marker, [])
        if len(found) > 1:
            failures.append(f"{outcome.write.key}: stored {len(found)} times")
        if outcome.status is not None and outcome.status < 300 and not found:
            failures.append(f"{outcome.write.key}: acknowledged but not in the journal")
        if outcome.write.kind == "directive" and found:
            tasks = by_marker.get(outcome.write.marker + " /tasks", [])
            if len(tasks) != 3:
                failures.append(f"{outcome.write.key}: directive stored with {len(tasks)} "
                                "of its 3 tasks")
    for entity, seen in versions.items():
        if seen != list(range(1, len(seen) + 1)):
            failures.append(f"{entity}: versions {seen[:10]} are not 1..n in order")
    positions = sorted(by_position)
    gaps = sum(b - a - 1 for a, b in itertools.pairwise(positions))
    figures = {
        "events in the journal": len(entries),
        "writes sent": len(load.outcomes),
        "writes acknowledged": len(acknowledged),
        "acknowledged by replay (Idempotent-Replayed)": sum(o.replayed for o in acknowledged),
        "writes still in doubt": len(load.in_doubt()),
        "responses by status": dict(sorted(load.statuses.items(), key=lambda kv: str(kv[0]))),
        "position gaps (rolled-back sequence values)": gaps,
    }
    return Verdict(figures, failures)


def print_figures(title: str, figures: dict[str, Any]) -> None:
    log(f"\n{title}")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        log(f"  {key:<{width}}  {value}")
