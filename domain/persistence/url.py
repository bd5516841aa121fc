"""One setting, ``LEDGER_DATABASE_URL``, mapped onto the eventsourcing library's environment.

    sqlite:///ledger.db              a file relative to the working directory (the default)
    sqlite:////var/lib/ledger.db     an absolute path
    postgresql://user:pass@host:5432/db?schema=quang_ngai&pool_size=10

Query parameters of a PostgreSQL URL: ``schema`` (one province per schema, DESIGN §8),
``pool_size``, ``max_overflow``, ``connect_timeout``, ``lock_timeout``, ``pre_ping``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_URL = "sqlite:///ledger.db"
ENV_VAR = "LEDGER_DATABASE_URL"


class StoreURLError(ValueError):
    """LEDGER_DATABASE_URL cannot be understood."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    url: str
    dialect: str  # "sqlite" | "postgres"
    env: dict[str, str]

    @property
    def redacted(self) -> str:
        """The URL without its password, for logs and messages."""
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.url


_PG_PARAMS = {
    "pool_size": "POSTGRES_POOL_SIZE",
    "max_overflow": "POSTGRES_MAX_OVERFLOW",
    "connect_timeout": "POSTGRES_CONNECT_TIMEOUT",
    "lock_timeout": "POSTGRES_LOCK_TIMEOUT",
    "pre_ping": "POSTGRES_PRE_PING",
    "schema": "POSTGRES_SCHEMA",
}


def configured_url() -> str:
    return os.environ.get(ENV_VAR, "").strip() or DEFAULT_URL


def parse_store_url(url: str | None = None) -> StoreConfig:
    url = (url or configured_url()).strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    common = {
        # Our own recorders: in-transaction hooks for the hash chain and idempotency keys.
        "APPLICATION_RECORDER_TOPIC": "",
        "CREATE_TABLE": "yes",
    }
    if scheme == "sqlite":
        raw_path = unquote(url[len("sqlite://") :])
        if not raw_path.startswith("/") or raw_path == "/":
            raise StoreURLError(
                f"{ENV_VAR}={url!r}: expected sqlite:///relative/path or sqlite:////absolute/path"
            )
        path = raw_path[1:]
        if path != ":memory:" and not path.startswith("file:"):
            path = str(Path(path).expanduser().resolve())
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        env = {
            **common,
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "domain.persistence.recorders:LedgerSQLiteRecorder",
        }
        return StoreConfig(url=url, dialect="sqlite", env=env)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        dbname = parts.path.lstrip("/")
        if not dbname:
            raise StoreURLError(f"{ENV_VAR}: the PostgreSQL URL names no database")
        env = {
            **common,
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(dbname),
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
            "POSTGRES_LOCK_TIMEOUT": "10",
            # No check query before every use of a pooled connection: it cost a round trip
            # per store call (a quarter of a write's time). After an outage the service's
            # breaker has the pool check its idle connections once, when the database is
            # back (persistence/breaker.py); ?pre_ping=y turns the per-use check on.
            "POSTGRES_PRE_PING": "n",
            "POSTGRES_SCHEMA": "public",
            # Deliberately off: with it, events of one application were written to another's
            # table and projection positions were dropped (DESIGN §7).
            "POSTGRES_ENABLE_DB_FUNCTIONS": "no",
            "APPLICATION_RECORDER_TOPIC": "domain.persistence.recorders:LedgerPostgresRecorder",
        }
        for key, values in parse_qs(parts.query).items():
            if key not in _PG_PARAMS:
                raise StoreURLError(
                    f"{ENV_VAR}: unknown parameter {key!r} (known: {', '.join(_PG_PARAMS)})"
                )
            env[_PG_PARAMS[key]] = values[-1]
        return StoreConfig(url=url, dialect="postgres", env=env)
    raise StoreURLError(
        f"{ENV_VAR}={url!r}: unsupported scheme {parts.scheme!r} (use sqlite:/// or postgresql://)"
    )
