"""API tokens: the raw secret is shown once, only its hash is stored."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from apps.core.models import ApiToken
from tests.admin.helpers import form_data, form_errors, messages_of

pytestmark = pytest.mark.django_db

ADD = "/admin/core/apitoken/add/"
LIST = "/admin/core/apitoken/"
RAW_RE = re.compile(r"kp_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def admin_user(make_user: Callable[..., User]) -> User:
    return make_user("admin")


@pytest.fixture
def admin_client_(client: Client, admin_user: User) -> Client:
    client.force_login(admin_user)
    return client


def _add_token(client: Client, user: User, name: str) -> tuple[ApiToken, str, object]:
    data = form_data(client.get(ADD))
    assert {"user", "name", "expires_at_0", "expires_at_1"} <= set(data)
    data.update(user=str(user.pk), name=name)
    response = client.post(ADD, data, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain, form_errors(response)
    shown = [m for m in messages_of(response) if RAW_RE.search(m)]
    assert len(shown) == 1, messages_of(response)
    raw = RAW_RE.search(shown[0]).group(0)
    return ApiToken.objects.get(user=user, name=name), raw, response


def _row_text(token: ApiToken) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(t)::text FROM core_apitoken t WHERE id = %s", [token.pk])
        return cursor.fetchone()[0]


def test_add_shows_raw_token_once_and_stores_only_its_hash(
    admin_client_: Client, admin_user: User
) -> None:
    viewer = User.objects.create_user("release-bot", is_staff=False)
    token, raw, response = _add_token(admin_client_, viewer, "release-platform")

    assert raw.startswith("kp_")
    assert raw in response.content.decode()  # shown on the page after saving
    assert token.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.prefix == raw[:10]
    assert token.revoked_at is None
    row = _row_text(token)
    assert raw not in row and raw[10:] not in row
    assert token.key_hash in row

    # Never again: not on the list, not on the change page.
    for url in (LIST, f"/admin/core/apitoken/{token.pk}/change/"):
        page = admin_client_.get(url)
        assert page.status_code == 200
        assert raw not in page.content.decode()
        assert not [m for m in messages_of(page) if RAW_RE.search(m)]


def test_each_token_gets_its_own_secret(admin_client_: Client, admin_user: User) -> None:
    first, raw1, _ = _add_token(admin_client_, admin_user, "one")
    second, raw2, _ = _add_token(admin_client_, admin_user, "two")
    assert raw1 != raw2
    assert first.key_hash != second.key_hash


def test_raw_token_authenticates_until_revoked(
    admin_client_: Client, make_user: Callable[..., User]
) -> None:
    viewer = make_user("viewer")
    token, raw, _ = _add_token(admin_client_, viewer, "dashboards")
    api = APIClient()
    assert api.get("/api/v1/clusters/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200

    response = admin_client_.post(
        LIST, {"action": "revoke", "_selected_action": [token.pk], "index": 0}, follow=True
    )
    assert "Revoked 1 token(s)." in messages_of(response)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api.get("/api/v1/clusters/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


def test_revoke_action_sets_revoked_at(admin_client_: Client, admin_user: User) -> None:
    tokens = []
    for name in ("a", "b", "c"):
        token = ApiToken(user=admin_user, name=name)
        token.issue()
        token.save()
        tokens.append(token)

    response = admin_client_.post(
        LIST,
        {"action": "revoke", "_selected_action": [tokens[0].pk, tokens[1].pk], "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    assert messages_of(response) == ["Revoked 2 token(s)."]
    for t in tokens:
        t.refresh_from_db()
    assert tokens[0].revoked_at is not None and tokens[1].revoked_at is not None
    assert tokens[2].revoked_at is None
    first_revoked = tokens[0].revoked_at

    # Revoking again does not move the time of an already revoked token.
    response = admin_client_.post(
        LIST, {"action": "revoke", "_selected_action": [tokens[0].pk], "index": 0}, follow=True
    )
    assert messages_of(response) == ["Revoked 0 token(s)."]
    tokens[0].refresh_from_db()
    assert tokens[0].revoked_at == first_revoked


def test_duplicate_name_for_a_user_is_a_form_error(admin_client_: Client, admin_user: User) -> None:
    _add_token(admin_client_, admin_user, "dup")
    data = form_data(admin_client_.get(ADD))
    data.update(user=str(admin_user.pk), name="dup")
    response = admin_client_.post(ADD, data)
    assert response.status_code == 200
    assert form_errors(response)
    assert ApiToken.objects.filter(user=admin_user, name="dup").count() == 1
    assert not RAW_RE.search(response.content.decode())
