"""Writes of the core app: API tokens issued from a shell."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from apps.core.models import ApiToken


class UnknownUser(ValueError):
    pass


@transaction.atomic
def api_token_issue(*, username: str, name: str) -> tuple[ApiToken, str, bool]:
    """Issue the token `name` of `username`: a new one, or a new secret for an existing
    one (which also un-revokes it; the old secret stops working). Returns the token,
    its secret (to show once) and whether it was created."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise UnknownUser(f"no user named {username!r}")
    token = ApiToken.objects.select_for_update().filter(user=user, name=name).first()
    created = token is None
    if token is None:
        token = ApiToken(user=user, name=name)
    raw = token.issue()
    token.revoked_at = None
    token.save()
    return token, raw, created
