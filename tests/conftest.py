from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    """A staff user in one of the built-in roles (admin, operator, viewer)."""

    def make(role: str, username: str | None = None) -> User:
        user = User.objects.create_user(
            username=username or f"{role}-user", password="pw-For-tests-1", is_staff=True
        )
        user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def api_client_for(make_user: Callable[..., User]) -> Callable[[str], APIClient]:
    def make(role: str) -> APIClient:
        client = APIClient()
        client.force_authenticate(make_user(role))
        return client

    return make


@pytest.fixture
def admin_api(api_client_for: Callable[[str], APIClient]) -> APIClient:
    return api_client_for("admin")
