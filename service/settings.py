"""Settings of the HTTP service, read from the environment (12-factor).

| variable | default | meaning |
|---|---|---|
| LEDGER_DATABASE_URL | sqlite:///ledger.db | the store (see domain/persistence/url.py) |
| LEDGER_API_MAX_BODY_BYTES | 2097152 | larger request bodies are refused with 413 |
| LEDGER_API_READ_WAIT_SECONDS | 5 | how long a query with ``min_position`` waits for projections |
| LEDGER_API_RETRY_AFTER_SECONDS | 2 | Retry-After sent with 503 answers |
| LEDGER_API_FEED_POLL_SECONDS | 1 | how often the SSE feed polls the store for new events |
| LEDGER_API_FEED_HEARTBEAT_SECONDS | 15 | an SSE comment line keeps idle connections open |
| LEDGER_API_FEED_MAX_SECONDS | 300 | feed connections end then; clients reconnect |
| LEDGER_API_JOURNAL_MAX_LIMIT | 1000 | the largest page of the journal |
| LEDGER_API_LOG_LEVEL | info | structlog level |
| LEDGER_API_ACCESS_LOG | true | one JSON line per request |
| LEDGER_API_GROUP_COMMIT | true | save concurrent commands in one transaction |
| LEDGER_API_CACHE_SECONDS | 5 | reuse token and agency reads this long (see docs/api.md) |
| LEDGER_API_EMBEDDED_WORKER | false | fold read models in-process (`serve --with-worker`) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from domain.persistence.url import configured_url


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a number") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r}: must not be negative")
    return value


def _int(name: str, default: int) -> int:
    value = _float(name, default)
    if value != int(value) or value < 1:
        raise ValueError(f"{name}={value!r}: expected a positive whole number")
    return int(value)


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r}: expected true or false")


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=configured_url)
    max_body_bytes: int = 2 * 1024 * 1024
    read_wait_seconds: float = 5.0
    retry_after_seconds: int = 2
    feed_poll_seconds: float = 1.0
    feed_heartbeat_seconds: float = 15.0
    feed_max_seconds: float = 300.0
    journal_max_limit: int = 1000
    log_level: str = "info"
    access_log: bool = True
    group_commit: bool = True
    cache_seconds: float = 5.0
    freshness_seconds: float = 0.05
    overview_seconds: float = 10.0
    embedded_worker: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=configured_url(),
            max_body_bytes=_int("LEDGER_API_MAX_BODY_BYTES", cls.max_body_bytes),
            read_wait_seconds=_float("LEDGER_API_READ_WAIT_SECONDS", cls.read_wait_seconds),
            retry_after_seconds=_int("LEDGER_API_RETRY_AFTER_SECONDS", cls.retry_after_seconds),
            feed_poll_seconds=_float("LEDGER_API_FEED_POLL_SECONDS", cls.feed_poll_seconds),
            feed_heartbeat_seconds=_float("LEDGER_API_FEED_HEARTBEAT_SECONDS",
                                          cls.feed_heartbeat_seconds),
            feed_max_seconds=_float("LEDGER_API_FEED_MAX_SECONDS", cls.feed_max_seconds),
            journal_max_limit=_int("LEDGER_API_JOURNAL_MAX_LIMIT", cls.journal_max_limit),
            group_commit=_bool("LEDGER_API_GROUP_COMMIT", cls.group_commit),
            cache_seconds=_float("LEDGER_API_CACHE_SECONDS", cls.cache_seconds),
            freshness_seconds=_float("LEDGER_API_FRESHNESS_SECONDS", cls.freshness_seconds),
            overview_seconds=_float("LEDGER_API_OVERVIEW_SECONDS", cls.overview_seconds),
            embedded_worker=_bool("LEDGER_API_EMBEDDED_WORKER", cls.embedded_worker),
            log_level=os.environ.get("LEDGER_API_LOG_LEVEL", "info").strip().lower() or "info",
            access_log=_bool("LEDGER_API_ACCESS_LOG", True),
        )
