"""Shared CLI plumbing: opening the ledger, one-line errors, dates for people, JSON for machines."""

from __future__ import annotations

import getpass
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, NoReturn
from uuid import UUID

import typer
from eventsourcing.persistence import PersistenceError
from rich.console import Console

from domain.actors import CommandContext, SourceDocument, system_context
from domain.application import Ledger
from domain.clock import parse_date
from domain.errors import DomainError, UnreadableEvent
from domain.persistence.url import StoreURLError, parse_store_url

console = Console(highlight=False, soft_wrap=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

# Exit codes: 1 the ledger refused (nothing stored), 2 usage, 3 the store is unreachable,
# 4 the record is damaged (verification failed, or a stored event cannot be read).
EXIT_REFUSED, EXIT_USAGE, EXIT_STORE, EXIT_DAMAGED = 1, 2, 3, 4


def fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    """Print one line to stderr and exit non-zero."""
    first_line = " ".join(str(message).split())
    # Plain write, not rich: rich would wrap a long message at the terminal's width.
    sys.stderr.write(f"error: {first_line}\n")
    sys.stderr.flush()
    raise SystemExit(code)


@contextmanager
def open_ledger(url: str | None = None) -> Iterator[Ledger]:
    try:
        ledger = Ledger(url)
    except StoreURLError as exc:
        fail(str(exc), EXIT_USAGE)
    except (PersistenceError, OSError) as exc:
        fail(f"cannot open the ledger store: {exc}", EXIT_STORE)
    try:
        yield ledger
    finally:
        ledger.close()


@contextmanager
def open_ledger_when_reachable(url: str | None, stop: threading.Event,
                               report: Callable[[Exception, float], None], *,
                               first_wait: float = 1.0,
                               longest_wait: float = 30.0) -> Iterator[Ledger | None]:
    """Open the ledger for a process that follows it (``ledger worker``): a PostgreSQL store
    that cannot be reached yet (the database restarting, or started after this process) is
    tried again, waiting twice as long each time, until it opens or ``stop`` is set (then
    None), as the worker already waits out outages once it runs. ``report`` hears each
    failure and the wait before the next try. A wrong URL, or a SQLite file that cannot be
    opened, will not mend by waiting: those fail at once, as ``open_ledger`` does."""
    try:
        store = parse_store_url(url)
    except StoreURLError as exc:
        fail(str(exc), EXIT_USAGE)
    if store.dialect != "postgres":
        with open_ledger(url) as ledger:
            yield ledger
        return
    wait = first_wait
    while True:
        try:
            ledger = Ledger(url)
            break
        except PersistenceError as exc:
            report(exc, wait)
            if stop.wait(wait):
                yield None
                return
            wait = min(wait * 2, longest_wait)
    try:
        yield ledger
    finally:
        ledger.close()


def operator_context(source: str | None = None, source_date: str | None = None) -> CommandContext:
    """Commands run from the CLI act as the operator (role ``system``), named by OS user."""
    document = None
    if source:
        document = SourceDocument(source, parse_date(source_date) if source_date else None)
    return system_context(f"cli:{getpass.getuser()}", document)


def date_option(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return parse_date(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def to_json(value: Any) -> Any:
    """JSON for machines: ISO 8601 dates, UUIDs as strings."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_json(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_json(value), ensure_ascii=False, indent=2) + "\n")


def run_guarded(app: Any) -> None:
    """Run the typer app (which reports its own usage errors, exit 2); turn every refusal of
    the ledger into one line on stderr and an exit code."""
    try:
        app()
    except UnreadableEvent as exc:
        fail(str(exc), EXIT_DAMAGED)
    except DomainError as exc:
        fail(str(exc), EXIT_REFUSED)
    except PersistenceError as exc:
        fail(f"the ledger store failed: {exc}", EXIT_STORE)
    except KeyboardInterrupt:
        fail("interrupted", 130)
