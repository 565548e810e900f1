"""Access tokens: created and revoked here, checked in ``auth.py``."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from .. import auth
from ..models import ApiToken, utcnow
from .transactions import write_transaction


def create_token(name: str) -> tuple[str, ApiToken]:
    """A new access token; the secret is returned once and only its hash is stored."""
    secret = auth.new_secret()
    with write_transaction() as session:
        token = ApiToken(
            name=name,
            token_hash=auth.hash_secret(secret),
            prefix=secret[: len(auth.TOKEN_PREFIX) + 4],
            created_at=utcnow(),
        )
        session.add(token)
    auth.invalidate_cache(current_app._get_current_object())  # type: ignore[attr-defined]
    return secret, token


def revoke_token(name: str) -> bool:
    """Revoke a token by name; False if there is no such active token."""
    with write_transaction() as session:
        token = session.scalars(
            select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        ).first()
        if token is None:
            return False
        token.revoked_at = utcnow()
    auth.invalidate_cache(current_app._get_current_object())  # type: ignore[attr-defined]
    return True
