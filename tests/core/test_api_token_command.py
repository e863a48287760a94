"""`manage.py api_token issue`: the token the docs' curl examples use, from a shell."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from apps.core.models import ApiToken


def issue(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("api_token", "issue", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def status_with(token: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/api/v1/clusters/").status_code


@pytest.mark.django_db
def test_issue_prints_only_a_working_token_and_reissue_replaces_it(make_user) -> None:  # type: ignore[no-untyped-def]
    make_user("admin", username="ops")
    first, message = issue("release-platform", "--user", "ops")
    assert first.startswith("kp_") and "\n" not in first
    assert "created" in message and first not in message
    assert status_with(first) == 200

    second, message = issue("release-platform", "--user", "ops")
    assert "new secret" in message
    assert second != first
    assert status_with(second) == 200
    assert status_with(first) == 401  # the old secret stopped working
    assert ApiToken.objects.filter(name="release-platform").count() == 1


@pytest.mark.django_db
def test_a_revoked_token_issued_again_works_again(make_user) -> None:  # type: ignore[no-untyped-def]
    make_user("admin", username="ops")
    issue("ci", "--user", "ops")
    ApiToken.objects.filter(name="ci").update(revoked_at="2026-01-01T00:00Z")
    token, _ = issue("ci", "--user", "ops")
    assert status_with(token) == 200


@pytest.mark.django_db
def test_unknown_user_and_bad_name_are_named() -> None:
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        issue("x", "--user", "nobody")
    with pytest.raises(CommandError, match="1 to 100 characters"):
        issue(" ", "--user", "nobody")
