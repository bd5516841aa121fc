"""Domain errors.

Every error carries a stable machine-readable ``code`` (used as the RFC 9457 problem
``type`` suffix over HTTP and shown by the CLI), a one-line human message, and, where
one input is at fault, the ``field`` that names it. The HTTP layer maps the class to a
status code; nothing else about an error is decided outside ``domain/``.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class: a command was refused. Nothing was stored."""

    code = "domain-error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class ValidationError(DomainError):
    """Input is malformed: wrong shape, empty, not NFC, out of range."""

    code = "validation-error"


class InvalidDocumentNumber(ValidationError):
    code = "invalid-document-number"


class UnparseableDeadline(ValidationError):
    code = "unparseable-deadline"


class TextNotNormalised(ValidationError):
    code = "text-not-nfc"


class NotFound(DomainError):
    code = "not-found"


class UnknownAgency(NotFound):
    code = "unknown-agency"


class UnknownDirective(NotFound):
    code = "unknown-directive"


class UnknownTask(NotFound):
    code = "unknown-task"


class Conflict(DomainError):
    """The command contradicts what the ledger already holds."""

    code = "conflict"


class DuplicateDirective(Conflict):
    code = "duplicate-directive"


class DuplicateAgency(Conflict):
    code = "duplicate-agency"


class InvalidTransition(Conflict):
    """The entity is not in a state that allows this command (e.g. task not open)."""

    code = "invalid-transition"


class TaskNotOpen(InvalidTransition):
    code = "task-not-open"


class ConcurrentWrite(Conflict):
    """Another writer saved a newer version first; retrying may succeed."""

    code = "concurrent-write"


class StaleVersion(DomainError):
    """The caller's expected version (If-Match) is not the current one."""

    code = "stale-version"


class NotPermitted(DomainError):
    """The actor's role or agency does not allow this command."""

    code = "not-permitted"

    def __init__(self, message: str, *, field: str | None = None, scope: str | None = None):
        super().__init__(message, field=field)
        self.scope = scope


class NotLeadAgency(NotPermitted):
    code = "not-lead-agency"


class UnreadableEvent(DomainError):
    """A stored event can no longer be read as the event it was: its row was altered or
    damaged outside the ledger. Nothing after it can be folded truthfully, so whoever reads
    stops there and says where; ``ledger verify`` tells how the record was changed."""

    code = "unreadable-event"


def unreadable_event(event: str, problem: str) -> UnreadableEvent:
    """The one wording of every reader's refusal: which stored event, what is wrong with it."""
    return UnreadableEvent(
        f"the stored event {event} {problem}; the record was altered or damaged outside the "
        "ledger (`ledger verify` reports how)")
