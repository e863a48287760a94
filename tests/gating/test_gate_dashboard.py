"""The cluster page's "Release gate" panel: its latest decisions, newest first."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from apps.runs.models import RunState
from tests.factories import ClusterFactory
from tests.gating.helpers import cases, finished, gating_set, policy

pytestmark = pytest.mark.django_db


def test_cluster_page_shows_the_latest_gate_decisions(
    make_user: Callable[..., User], api_client_for: Callable[[str], APIClient]
) -> None:
    cluster = ClusterFactory(name="prod-1")
    [case] = cases(1)
    policy([("etcd", gating_set(case))], name="prod-gate")
    finished(case, cluster, RunState.FAILED, step="put", error="connection refused")
    api = api_client_for("operator")
    for _ in range(6):
        api.get("/api/v1/gate", {"cluster": "prod-1", "component": "etcd"})
    finished(case, cluster)
    api.get("/api/v1/gate", {"cluster": "prod-1"})

    page = Client()
    page.force_login(make_user("viewer"))
    html = page.get("/dashboard/clusters/prod-1/").content.decode()
    panel = html.split('<section id="release-gate">')[1].split("</section>")[0]
    assert "Release gate" in panel
    items = panel.split("<li ")[1:]
    assert len(items) == 5  # the newest five of seven
    assert 'class="verdict-allow"' in items[0] and "policy prod-gate" in items[0]
    assert "by operator-user" in items[0]
    assert 'class="verdict-deny"' in items[1] and "for <code>etcd</code>" in items[1]
    assert "failed at step &#x27;put&#x27;: connection refused" in items[1]


def test_cluster_page_without_decisions_says_so(make_user: Callable[..., User]) -> None:
    ClusterFactory(name="prod-1")
    page = Client()
    page.force_login(make_user("viewer"))
    assert "Nobody asked yet." in page.get("/dashboard/clusters/prod-1/").content.decode()
