"""Documented error answers, shared by the routes' OpenAPI descriptions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=["urn:chidao-ledger:problem:not-lead-agency"])
    title: str
    status: int
    detail: str = Field(examples=["QNG-STP is not the lead agency (QNG-STC) of this task"])
    code: str = Field(description="Stable machine-readable code; the suffix of `type`.")
    instance: str | None = None
    request_id: str | None = None
    field: str | None = Field(None, description="The offending input, where one is at fault.")
    scope: str | None = Field(None, description="On 403: the scope the caller lacks.")
    errors: list[dict[str, Any]] | None = None


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description,
            "content": {"application/problem+json": {}}}


READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _problem("No valid bearer token."),
    404: _problem("No such entity."),
    422: _problem("Invalid parameters."),
    500: _problem("A stored event can no longer be read (`unreadable-event`): the record was "
                  "altered outside the ledger; `detail` names the event."),
    503: _problem("The store (or the read models) cannot answer now; see Retry-After."),
}

WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem("The body is not valid JSON."),
    401: _problem("No valid bearer token."),
    403: _problem("The token's role or agency may not do this; `scope` names what is missing."),
    404: _problem("No such entity."),
    409: _problem("The command contradicts the ledger, or a concurrent write came first."),
    412: _problem("If-Match names a version that is no longer current."),
    413: _problem("The body is larger than the service accepts."),
    415: _problem("The body is not JSON (send Content-Type: application/json)."),
    422: _problem("The body or a header is invalid, or the Idempotency-Key was used for "
                  "another request."),
    500: _problem("A stored event can no longer be read (`unreadable-event`): the record was "
                  "altered outside the ledger; `detail` names the event."),
    503: _problem("The store is unavailable; see Retry-After."),
}
