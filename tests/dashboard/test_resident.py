"""Resident probes on the dashboards: the probe page with its chart data, the overview list,
visibility by cluster, and samples pushed live over the real Redis channel layer."""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from apps.resident.alerting import resident_alerts_judge
from apps.resident.models import ResidentAlertRule
from tests.dashboard.test_live import connect, drain, run_async, subscribe
from tests.factories import ClusterFactory, ClusterGroupFactory
from tests.resident.helpers import batch, make_probe, post_samples, windows


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def viewer_of(group_name: str) -> User:
    """A viewer who sees only the clusters of one cluster group."""
    auth = Group.objects.create(name=f"team-{group_name}")
    user = User.objects.create_user("team-viewer", password="pw-For-tests-1", is_staff=True)
    user.groups.add(auth)
    ClusterGroupFactory(name=group_name).viewer_groups.add(auth)
    return user


@pytest.fixture
def loaded(db: None) -> dict[str, Any]:
    one, two = ClusterFactory(name="prod-1"), ClusterFactory(name="prod-2")
    probe, token = make_probe(clusters=[one, two])
    start = timezone.now() - timedelta(minutes=2)
    post_samples(Client(), batch(probe.name, "prod-1", windows(start, 60, failures=1)), token)
    post_samples(
        Client(), batch(probe.name, "prod-2", windows(start, 60, state="down", failures=10)), token
    )
    return {"probe": probe, "token": token, "clusters": (one, two)}


def chart_data(html: str) -> dict[str, Any]:
    match = re.search(
        r'<script id="resident-series" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, "the page embeds its chart data"
    return json.loads(match.group(1))


@pytest.mark.django_db
def test_the_probe_page_has_charts_per_cluster(loaded: dict[str, Any], make_user: Any) -> None:
    page = login(make_user("viewer")).get("/dashboard/resident/etcd-resident/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-live-scope="resident:{loaded["probe"].pk}"' in html
    assert "uPlot.iife.min.js" in html and "dashboard/resident.js" in html
    data = chart_data(html)
    assert data["step"] == 10
    assert [c["name"] for c in data["clusters"]] == ["prod-1", "prod-2"]
    prod1 = data["clusters"][0]
    assert sum(prod1["count"]) == 600
    filled = [a for a in prod1["availability"] if a is not None]
    assert filled and all(a == 90.0 for a in filled)
    assert "90.00 %" in html  # the 5-minute availability in the table
    assert login(make_user("viewer", "other")).get("/dashboard/resident/nope/").status_code == 404


@pytest.mark.django_db
def test_the_overview_lists_resident_probes_problems_first(
    loaded: dict[str, Any], make_user: Any
) -> None:
    ResidentAlertRule.objects.create(name="slo", availability_below=50)
    assert resident_alerts_judge() == 1  # prod-2 is at 0 %
    html = login(make_user("viewer")).get("/dashboard/?render=table").content.decode()
    section = html[html.index('id="resident-probes"') :]
    assert section.index("prod-2") < section.index("prod-1")
    assert "firing" in section and 'href="/dashboard/resident/etcd-resident/"' in section


@pytest.mark.django_db
def test_a_team_sees_only_its_clusters(loaded: dict[str, Any]) -> None:
    user = viewer_of("team-one")
    group = ClusterGroupFactory._meta.model.objects.get(name="team-one")
    group.members.add(loaded["clusters"][0])
    page = login(user).get("/dashboard/resident/etcd-resident/").content.decode()
    assert [c["name"] for c in chart_data(page)["clusters"]] == ["prod-1"]
    overview = login(user).get("/dashboard/?render=table").content.decode()
    assert "prod-2" not in overview[overview.index('id="resident-probes"') :]


@pytest.fixture
def live_layer(settings: Any) -> None:
    layer = settings.CHANNEL_LAYERS["default"]
    settings.CHANNEL_LAYERS = {
        "default": {**layer, "CONFIG": {**layer["CONFIG"], "prefix": f"kp-test-{os.getpid()}:"}}
    }


@pytest.mark.django_db(transaction=True)
def test_stored_samples_are_pushed_to_the_probe_page(live_layer: None, make_user: Any) -> None:
    one, two = ClusterFactory(name="prod-1"), ClusterFactory(name="prod-2")
    probe, token = make_probe(clusters=[one, two])
    user = viewer_of("team-one")
    ClusterGroupFactory._meta.model.objects.get(name="team-one").members.add(one)

    async def scenario() -> None:
        from asgiref.sync import sync_to_async

        page = await connect(user)
        assert (await subscribe(page, f"resident:{probe.pk}"))["type"] == "subscribed"
        start = timezone.now() - timedelta(seconds=5)

        def send(cluster: str) -> None:
            body = batch(probe.name, cluster, windows(start, 2, failures=1, p99=7.5))
            assert post_samples(Client(), body, token).status_code == 202

        await sync_to_async(send)("prod-1")
        await sync_to_async(send)("prod-2")  # a cluster this user may not see
        frames = await drain(page, quiet=1.0)
        assert [f["type"] for f in frames] == ["samples"]
        frame = frames[0]
        assert frame["cluster_id"] == one.pk and frame["state"] == "up"
        assert frame["points"][0][1:] == [10, 1, 3.0, 7.5]
        assert frame["points"][0][0] == int(start.timestamp())
        await page.disconnect()

    run_async(scenario)
