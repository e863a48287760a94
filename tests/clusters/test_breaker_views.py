"""What operators see of an open circuit breaker, opened for real by failed
connections: the admin (column, filter, fields), the REST API (read-only
fields, filter) and the dashboards (overview and cluster page, flat queries)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.clusters.k8s import clear_client_cache
from apps.clusters.models import Cluster, Executor
from apps.clusters.services import cluster_check_api
from tests.clusters.unreachable import DroppingServer
from tests.factories import CaseFactory, ClusterFactory

pytestmark = pytest.mark.django_db

CLUSTERS = "/admin/clusters/cluster/"


@pytest.fixture
def broken(settings: Any) -> Iterator[Cluster]:
    """A cluster whose breaker three dropped connections opened."""
    settings.KUBEPROBE_BREAKER_FAILURES = 3
    with DroppingServer() as server:
        cluster = Cluster.objects.create(
            name="broken", executor=Executor.KUBERNETES, kubeconfig=server.kubeconfig()
        )
        for _ in range(3):
            cluster_check_api(cluster=Cluster.objects.get(pk=cluster.pk))
        yield Cluster.objects.get(pk=cluster.pk)
    clear_client_cache()


def test_the_admin_lists_filters_and_shows_the_open_breaker(
    broken: Cluster, client: Client, make_user: Callable[..., Any]
) -> None:
    assert broken.breaker_open_since is not None
    healthy = ClusterFactory(name="healthy", executor=Executor.LOCAL)
    client.force_login(make_user("viewer"))
    page = client.get(CLUSTERS).content.decode()
    assert "unreachable since" in page and "reachable" in page
    opened = client.get(CLUSTERS, {"breaker": "open"}).context["cl"].result_list
    assert [c.name for c in opened] == ["broken"]
    closed = client.get(CLUSTERS, {"breaker": "closed"}).context["cl"].result_list
    assert [c.name for c in closed] == [healthy.name]
    form = client.get(f"{CLUSTERS}{broken.pk}/change/").content.decode()
    assert "Circuit breaker" in form
    assert broken.breaker_last_error in form


def test_the_rest_api_shows_the_breaker_read_only_and_filters_on_it(
    broken: Cluster, admin_api: APIClient
) -> None:
    ClusterFactory(name="healthy", executor=Executor.LOCAL)
    body = admin_api.get("/api/v1/clusters/broken/").json()
    assert body["breaker_failures"] == 3
    assert body["breaker_open_since"] and body["breaker_next_probe_at"]
    assert body["breaker_last_error"] == broken.breaker_last_error
    changed = admin_api.patch(
        "/api/v1/clusters/broken/",
        {"breaker_open_since": None, "breaker_failures": 0, "description": "edited"},
        format="json",
    )
    assert changed.status_code == 200
    row = Cluster.objects.get(pk=broken.pk)
    assert (row.breaker_open_since, row.breaker_failures, row.description) == (
        broken.breaker_open_since,
        3,
        "edited",
    )
    names = lambda q: [c["name"] for c in admin_api.get(f"/api/v1/clusters/?{q}").json()["results"]]  # noqa: E731
    assert names("unreachable=true") == ["broken"]
    assert names("unreachable=false") == ["healthy"]


def _get(client: Client, url: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries), response.content.decode()


def test_the_dashboards_say_since_when_with_flat_queries(
    broken: Cluster, client: Client, make_user: Callable[..., Any]
) -> None:
    CaseFactory()
    for i in range(5):
        ClusterFactory(name=f"ok-{i}", executor=Executor.LOCAL)
    client.force_login(make_user("viewer"))
    client.get("/dashboard/?render=table")  # warm per-process caches
    with_one, html = _get(client, "/dashboard/?render=table")
    assert html.count("unreachable since") == 1
    row = html[html.index(f'data-cluster="{broken.pk}"') :].split("</tr>")[0]
    assert "unreachable since" in row and broken.breaker_last_error[:40] in row
    Cluster.objects.filter(name__startswith="ok-").update(
        breaker_open_since=broken.breaker_open_since, breaker_last_error="Connection refused"
    )
    with_six, html = _get(client, "/dashboard/?render=table")
    assert html.count("unreachable since") == 6
    assert with_six == with_one

    page = client.get("/dashboard/clusters/broken/").content.decode()
    assert "Unreachable since" in page and broken.breaker_last_error in page
    healthy_page = client.get("/dashboard/clusters/ok-0/").content.decode()
    assert "Connection refused" in healthy_page  # now open too
