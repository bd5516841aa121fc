"""Errors of the integrity layer (domain errors: the CLI and HTTP layers know how to show them)."""

from __future__ import annotations

from domain.errors import DomainError


class IntegrityFailure(DomainError):
    """The stored events and their chain disagree; nothing was written or signed."""

    code = "integrity-failure"


class SigningKeyError(DomainError):
    """The signing key is missing, unreadable, too widely readable or not Ed25519."""

    code = "signing-key"


class BundleError(DomainError):
    """An evidence bundle cannot be read (not a zip, a member missing, a malformed line)."""

    code = "bad-bundle"
