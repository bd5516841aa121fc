"""Request dependencies: the per-process services, the caller's token, If-Match.

Authorisation of commands is the domain's (``domain/rules.py`` and the Ledger): here a
token only becomes an ``Actor``. The HTTP layer itself enforces just two scopes: ``read``
(any valid token) and ``admin`` (token administration).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from domain.actors import Role
from domain.application import Ledger
from domain.errors import NotPermitted
from service.idempotency import IdempotencyStore, fingerprint
from service.problems import ProblemError
from service.read_models import AnswerCache, ReadModelsPort
from service.settings import Settings
from service.storage import ServiceTables
from service.tokens import TokenInfo, TokenStore


@dataclass
class Services:
    """One per process: one Ledger (and so one connection pool), shared by all requests."""

    settings: Settings
    ledger: Ledger
    tables: ServiceTables
    tokens: TokenStore
    idempotency: IdempotencyStore
    read_models: ReadModelsPort | None
    metrics: Any
    # Serialised read-model answers keyed by projection freshness (routers/queries.py).
    answers: Any = field(default_factory=lambda: AnswerCache())
    # Overview answers shared with the other server processes (service/shared_answers.py);
    # None: each process computes its own.
    shared_answers: Any = None


# Dependencies are ``async def`` when they do no blocking I/O: FastAPI runs each sync
# dependency on the thread pool, a hop per dependency per request.


async def services(request: Request) -> Services:
    return request.app.state.services


_bearer = HTTPBearer(auto_error=False, description="A token from `ledger token create`.")


async def current_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenInfo:
    if credentials is None:
        raise ProblemError(401, "unauthenticated",
                           "send 'Authorization: Bearer <token>' (create one with "
                           "'ledger token create')",
                           headers={"WWW-Authenticate": 'Bearer realm="chidao-ledger"'})
    tokens = request.app.state.services.tokens
    bearer = credentials.credentials.strip()
    known, info = tokens.cached(bearer)
    if not known:  # reads the tokens table: off the event loop
        info = await run_in_threadpool(tokens.authenticate, bearer)
    if info is None:
        raise ProblemError(401, "invalid-token",
                           "the bearer token is unknown, expired or revoked",
                           headers={"WWW-Authenticate":
                                    'Bearer realm="chidao-ledger", error="invalid_token"'})
    request.state.actor = info.principal
    request.state.role = info.role.value
    return info


async def reader(token: Annotated[TokenInfo, Depends(current_token)]) -> TokenInfo:
    """Scope ``read``: every role reads the whole ledger (the ledger is evidence)."""
    return token


async def admin(token: Annotated[TokenInfo, Depends(current_token)]) -> TokenInfo:
    if token.role is not Role.ADMIN:
        raise NotPermitted(f"token administration needs the admin role, not {token.role.value}",
                           scope="admin")
    return token


Reader = Annotated[TokenInfo, Depends(reader)]
Writer = Annotated[TokenInfo, Depends(current_token)]
Admin = Annotated[TokenInfo, Depends(admin)]
ServicesDep = Annotated[Services, Depends(services)]

_ETAG = re.compile(r'^(?:W/)?"(\d{1,12})"$')


def etag(version: int) -> str:
    return f'"{version}"'


async def expected_version(
    if_match: Annotated[str | None, Header(
        alias="If-Match",
        description='The ETag of the entity as read (e.g. "3"): the write is refused with 412 '
                    "if the entity has changed since.",
    )] = None,
) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    tags = [t.strip() for t in if_match.split(",") if t.strip()]
    versions = [int(m.group(1)) for t in tags if (m := _ETAG.match(t))]
    if len(versions) != 1 or len(tags) != 1:
        raise ProblemError(412, "stale-version",
                           f"If-Match {if_match[:60]!r} does not name one version of this "
                           'entity; send the ETag as read, e.g. "3"', field="If-Match")
    return versions[0]


ExpectedVersion = Annotated[int | None, Depends(expected_version)]


async def idempotency_key(
    request: Request,
    key: Annotated[str | None, Header(
        alias="Idempotency-Key",
        description="A unique key per intended write (e.g. a UUID). A retry with the same key "
                    "and body returns the first response and stores nothing new.",
        max_length=200,
    )] = None,
) -> str | None:
    if key is None:
        return None
    if not key or not all(0x21 <= ord(ch) <= 0x7E for ch in key):
        raise ProblemError(422, "invalid-idempotency-key",
                           "Idempotency-Key must be 1-200 visible ASCII characters",
                           field="Idempotency-Key")
    body = await request.body()
    request.state.fingerprint = fingerprint(request.method, request.url.path, body,
                                            request.headers.get("if-match"))
    return key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]
