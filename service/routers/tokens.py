"""Token administration over HTTP (admin only). Tokens are created with
``ledger token create`` so that the secret is shown once, on the operator's terminal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service.deps import Admin, IdempotencyKey, ServicesDep
from service.openapi import WRITE_ERRORS
from service.schemas import TokenOut

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])
TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]


@router.get("", response_model=list[TokenOut], responses=WRITE_ERRORS)
def list_tokens(svc: ServicesDep, _: Admin):
    """Every token (never its secret)."""
    return [t.as_json() for t in svc.tokens.list()]


@router.post("/{token_id}/revocation", response_model=TokenOut, responses=WRITE_ERRORS)
def revoke_token(token_id: TokenId, svc: ServicesDep, _: Admin, key: IdempotencyKey):
    """Revoke a token at once. Revoking it again answers the same (idempotent by nature)."""
    return svc.tokens.revoke(token_id).as_json()
