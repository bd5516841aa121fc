"""Bearer tokens for agency systems: created by an operator, stored hashed.

A token reads ``cdl_<id>_<secret>``. Only SHA-256 of the secret is stored: the secret is
256 random bits, so a fast hash is enough (no password-style stretching is needed) and a
database dump does not yield usable tokens. The id is public: it names the principal in
event metadata (``token:<id>``) and in logs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from time import monotonic

from domain.actors import Actor, Role
from domain.clock import Clock, utc_now
from domain.errors import NotFound, ValidationError
from service.storage import ServiceTables

TOKEN_ROLES = (Role.OFFICE, Role.AGENCY, Role.INSPECTOR, Role.ADMIN)
_TOKEN = re.compile(r"^cdl_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


class UnknownToken(NotFound):
    code = "unknown-token"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: str
    role: Role
    agency: str | None
    label: str | None
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def principal(self) -> str:
        return f"token:{self.token_id}"

    def actor(self) -> Actor:
        return Actor(self.principal, self.role, self.agency)

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def as_json(self) -> dict[str, object]:
        return {
            "token_id": self.token_id,
            "role": self.role.value,
            "agency": self.agency,
            "label": self.label,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


_COLUMNS = "token_id, role, agency, label, created_at, created_by, expires_at, revoked_at"


def _info(row: tuple) -> TokenInfo:
    token_id, role, agency, label, created_at, created_by, expires_at, revoked_at = row
    return TokenInfo(token_id, Role(role), agency, label, _moment(created_at), created_by,
                     _moment(expires_at), _moment(revoked_at))


class TokenStore:
    def __init__(self, tables: ServiceTables, clock: Clock = utc_now,
                 cache_seconds: float = 0.0) -> None:
        self.tables = tables
        self.clock = clock
        # bearer digest -> (until, record): a request need not read the table every time;
        # a revocation made elsewhere takes effect within ``cache_seconds``.
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, TokenInfo | None]] = {}

    def create(self, *, role: str, agency: str | None = None, label: str | None = None,
               expires_at: datetime | None = None, created_by: str | None = None,
               ) -> tuple[str, TokenInfo]:
        """A new token: (the bearer string, shown once; what is stored about it)."""
        try:
            the_role = Role(role)
        except ValueError:
            the_role = None
        if the_role not in TOKEN_ROLES:
            raise ValidationError(
                f"role {role!r} is not one of {', '.join(r.value for r in TOKEN_ROLES)}",
                field="role",
            )
        if the_role is Role.AGENCY and not agency:
            raise ValidationError("an agency token must name its agency (--agency CODE)",
                                  field="agency")
        if the_role in (Role.INSPECTOR, Role.ADMIN) and agency:
            raise ValidationError(f"a {the_role.value} token does not belong to an agency",
                                  field="agency")
        if agency and not self.tables.ledger.agency_exists(agency):
            raise ValidationError(f"agency {agency!r} is not registered in the ledger",
                                  field="agency")
        now = self.clock()
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise ValidationError("expiry must carry a time zone", field="expires_at")
            if expires_at <= now:
                raise ValidationError("expiry is in the past", field="expires_at")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        info = TokenInfo(token_id, the_role, agency, label, now, created_by, expires_at, None)
        with self.tables.transaction(commit=True) as tx:
            tx.execute(
                f"INSERT INTO {self.tables.tokens} (token_id, secret_sha256, role, agency, "
                "label, created_at, created_by, expires_at, revoked_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, NULL)",
                (token_id, _hash(secret), the_role.value, agency, label, now.isoformat(),
                 created_by, expires_at.isoformat() if expires_at else None),
            )
        return f"cdl_{token_id}_{secret}", info

    def get(self, token_id: str) -> TokenInfo:
        with self.tables.transaction(commit=False) as tx:
            tx.execute(f"SELECT {_COLUMNS} FROM {self.tables.tokens} WHERE token_id = %s",
                       (token_id,))
            row = tx.fetchone()
        if row is None:
            raise UnknownToken(f"unknown token {token_id!r}", field="token_id")
        return _info(row)

    def list(self) -> list[TokenInfo]:
        with self.tables.transaction(commit=False) as tx:
            tx.execute(f"SELECT {_COLUMNS} FROM {self.tables.tokens} ORDER BY created_at, "
                       "token_id")
            return [_info(row) for row in tx.fetchall()]

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoke a token; revoking it again changes nothing and answers the same."""
        with self.tables.transaction(commit=True) as tx:
            tx.execute(
                f"UPDATE {self.tables.tokens} SET revoked_at = %s "
                "WHERE token_id = %s AND revoked_at IS NULL",
                (self.clock().isoformat(), token_id),
            )
        self._cache.clear()
        return self.get(token_id)

    def cached(self, bearer: str) -> tuple[bool, TokenInfo | None]:
        """(True, answer) when ``authenticate`` can answer without the store (a malformed
        bearer, or a cache hit); (False, None) when it would have to read the table."""
        if not _TOKEN.match(bearer):
            return True, None
        if self._cache_seconds > 0:
            hit = self._cache.get(_hash(bearer))
            if hit is not None and hit[0] > monotonic():
                info = hit[1]
                return True, info if info is not None and info.active(self.clock()) else None
        return False, None

    def authenticate(self, bearer: str) -> TokenInfo | None:
        """The token's record if the bearer string is a valid, unexpired, unrevoked token."""
        match = _TOKEN.match(bearer)
        if not match:
            return None
        if self._cache_seconds > 0:
            digest = _hash(bearer)
            hit = self._cache.get(digest)
            if hit is not None and hit[0] > monotonic():
                info = hit[1]
            else:
                info = self._lookup(*match.groups())
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (monotonic() + self._cache_seconds, info)
        else:
            info = self._lookup(*match.groups())
        return info if info is not None and info.active(self.clock()) else None

    def _lookup(self, token_id: str, secret: str) -> TokenInfo | None:
        row = self.tables.query_one(
            f"SELECT {_COLUMNS}, secret_sha256 FROM {self.tables.tokens} WHERE token_id = %s",
            (token_id,),
        )
        if row is None or not hmac.compare_digest(row[-1], _hash(secret)):
            return None
        return _info(row[:-1])
