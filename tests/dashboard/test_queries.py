"""Dashboard pages cost a fixed number of queries, whatever the number of clusters."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.alerts.models import Alert
from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import Cluster, ClusterGroup, Executor
from apps.runs.models import ProbeRun
from apps.scheduling.models import Event

pytestmark = pytest.mark.django_db

CASES = 20
# 14: one of them asks which pairs enabled bindings schedule (apps/scheduling/selectors.py;
# with bindings, a fixed few more plus one per bound group, never per cluster).
# grid.json and the table also read the resident columns (resident_matrix: its targets,
# their recent samples, their alerts), one more each at most here.
OVERVIEW_MAX_QUERIES = 14


def grow(start: int, stop: int, cases: list[Case]) -> list[Cluster]:
    """Clusters [start, stop) with an Alert row for every case; a few failing and firing."""
    clusters = Cluster.objects.bulk_create(
        [
            Cluster(
                name=f"c-{i:05d}",
                executor=Executor.LOCAL,
                region=f"r-{i % 4}",
                environment=("prod", "staging")[i % 2],
                labels={"team": f"t{i % 3}"},
            )
            for i in range(start, stop)
        ]
    )
    Alert.objects.bulk_create(
        [
            Alert(
                case=case,
                cluster=cluster,
                latest_state="failed" if (cluster.pk + case.pk) % 7 == 0 else "succeeded",
                state="firing" if (cluster.pk + case.pk) % 7 == 0 else "ok",
                severity=("warning", "critical")[cluster.pk % 2],
            )
            for cluster in clusters
            for case in cases
        ],
        batch_size=5000,
    )
    return clusters


@pytest.fixture
def cases(db: None) -> list[Case]:
    template = CaseTemplate.objects.create(name="t", image="x")
    return Case.objects.bulk_create(
        [Case(name=f"case-{i:02d}", template=template) for i in range(CASES)]
    )


def count(client: Client, url: str) -> tuple[int, list[str], str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return (
        len(ctx.captured_queries),
        [q["sql"] for q in ctx.captured_queries],
        response.content.decode(),
    )


@pytest.mark.parametrize(
    "url",
    [
        "/dashboard/grid.json",
        "/dashboard/grid.json?group_by=group",
        "/dashboard/grid.json?state=failing&region=r-1&q=c-0&order=problems",
        "/dashboard/",
        "/dashboard/?render=table",
    ],
)
def test_overview_queries_do_not_grow_with_clusters(
    client: Client, make_user: Callable[..., User], cases: list[Case], url: str
) -> None:
    for i in range(3):
        group = ClusterGroup.objects.create(name=f"g-{i}", selector={"team": f"t{i}"})
    client.force_login(make_user("viewer"))
    grow(0, 10, cases)
    client.get(url)  # warm per-process caches (content types, permissions)
    small, _, html = count(client, url)
    assert small <= OVERVIEW_MAX_QUERIES

    grow(10, 2000, cases)
    group.members.add(*Cluster.objects.all()[:50])
    big, sql, html = count(client, url)
    assert big == small, "\n".join(sql)
    if url.endswith("grid.json"):
        data = json.loads(html)
        rows = [row for _, section in data["sections"] for row in section]
        assert len(rows) == data["rows"] == 2000
        assert {len(row[3]) for row in rows} == {3 * CASES}  # three characters per cell
    if url.endswith("table"):
        assert len(re.findall(r'<td id="c-', html)) == 500 * CASES  # one page of 500 rows


def test_restricted_overview_queries_are_constant_too(client: Client, cases: list[Case]) -> None:
    viewers = Group.objects.create(name="t1-oncall")
    group = ClusterGroup.objects.create(name="t1", selector={"team": "t1"})
    group.viewer_groups.add(viewers)
    user = User.objects.create_user("bob", password="pw-For-tests-1", is_staff=True)
    user.groups.add(viewers)
    client.force_login(user)
    grow(0, 9, cases)
    url = "/dashboard/grid.json"
    client.get(url)
    small, _, body = count(client, url)
    assert json.loads(body)["rows"] == 3
    grow(9, 900, cases)
    big, sql, body = count(client, url)
    assert big == small, "\n".join(sql)
    assert json.loads(body)["rows"] == 300


def _history(cluster: Cluster, cases: list[Case], runs_per_case: int, events: int) -> None:
    now = timezone.now()
    ProbeRun.objects.bulk_create(
        [
            ProbeRun(
                case=case,
                cluster=cluster,
                trigger="schedule",
                state=("succeeded", "failed")[i % 5 == 0],
                duration_ms=100 + i,
                finished_at=now,
                steps=[{"name": "a", "ok": True, "duration_ms": 10 + i}],
            )
            for case in cases
            for i in range(runs_per_case)
        ]
    )
    ProbeRun.objects.filter(cluster=cluster).update(created_at=now - timedelta(minutes=5))
    Event.objects.bulk_create([Event(cluster=cluster, kind="upgrade") for _ in range(events)])


def test_cluster_and_case_pages_are_bounded(
    client: Client, make_user: Callable[..., User], cases: list[Case]
) -> None:
    client.force_login(make_user("viewer"))
    clusters = grow(0, 5, cases)
    _history(clusters[0], cases[:2], runs_per_case=2, events=1)
    cluster_url = f"/dashboard/clusters/{clusters[0].name}/"
    case_url = f"/dashboard/cases/{cases[0].name}/"
    run_url = f"/dashboard/runs/{ProbeRun.objects.first().pk}/"
    for url in (cluster_url, case_url, run_url, "/dashboard/alerts/"):
        client.get(url)
    small = {
        url: count(client, url)[0] for url in (cluster_url, case_url, run_url, "/dashboard/alerts/")
    }

    more = grow(5, 400, cases)
    _history(clusters[0], cases, runs_per_case=30, events=200)
    for cluster in more[:20]:
        _history(cluster, cases[:1], runs_per_case=10, events=0)
    for url, n_small in small.items():
        n_big, sql, _ = count(client, url)
        assert n_big == n_small, f"{url}\n" + "\n".join(sql)
        # 16: the stats read the last hour's runs and the hourly rollups.
        assert n_big <= 16, f"{url}\n" + "\n".join(sql)
    n_json, sql, _ = count(client, f"/dashboard/state.json?scope=case:{cases[0].pk}")
    assert n_json <= 10, "\n".join(sql)
