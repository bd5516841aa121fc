"""Fixtures for the integrity tests: fresh stores per hypothesis example, signing keys."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import PG_URL


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def fresh_url(store_url, tmp_path):
    """A factory of empty stores of the same kind as ``store_url`` (one per hypothesis
    example): new SQLite files, or new PostgreSQL schemas dropped afterwards."""
    import psycopg

    created: list[str] = []
    counter = iter(range(1_000_000))

    def make() -> str:
        if store_url.startswith("sqlite"):
            return f"sqlite:///{tmp_path}/ledger-{next(counter)}.db"
        schema = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        created.append(schema)
        base = urlsplit(PG_URL)
        sep = "&" if base.query else ""
        return urlunsplit(base._replace(query=f"{base.query}{sep}schema={schema}"))

    yield make
    if created:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            for schema in created:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
