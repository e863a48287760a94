"""The default alert rule can be edited in the admin but not renamed or deleted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.alerts.models import AlertRule

pytestmark = pytest.mark.django_db


def test_default_rule_cannot_be_deleted_or_renamed(
    client: Client, make_user: Callable[..., Any]
) -> None:
    client.force_login(make_user("admin"))
    default = AlertRule.objects.get(name="default")
    other = AlertRule.objects.create(name="strict", consecutive_failures=1)

    assert client.get(f"/admin/alerts/alertrule/{default.pk}/delete/").status_code == 403
    page = client.get(f"/admin/alerts/alertrule/{default.pk}/change/")
    assert page.status_code == 200
    assert b'name="name"' not in page.content  # shown read-only

    # The bulk delete leaves it too.
    client.post(
        "/admin/alerts/alertrule/",
        {"action": "delete_selected", "_selected_action": [default.pk, other.pk], "post": "yes"},
    )
    assert AlertRule.objects.filter(name="default").exists()

    client.post(
        "/admin/alerts/alertrule/",
        {"action": "delete_selected", "_selected_action": [other.pk], "post": "yes"},
    )
    assert not AlertRule.objects.filter(name="strict").exists()
