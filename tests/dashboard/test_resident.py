"""Resident probes on the dashboards: the probe page with its chart data, their columns in
the overview matrix, visibility by cluster, and samples and cell states pushed live over
the real Redis channel layer."""

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

from apps.dashboard import push
from apps.resident.alerting import resident_alerts_judge
from apps.resident.models import ResidentAlertRule, ResidentTarget
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


def resident_cell(html: str, probe_id: int, cluster_id: int) -> tuple[str, str, str]:
    """(classes, link, text) of one resident cell of the overview matrix."""
    match = re.search(
        rf'<td id="r-{probe_id}-{cluster_id}" class="([^"]*)"[^>]*><a href="([^"]*)"[^>]*>([^<]*)</a>',
        html,
    )
    assert match, f"no resident cell r-{probe_id}-{cluster_id}"
    return match.group(1), match.group(2), match.group(3)


@pytest.mark.django_db
def test_resident_probes_are_columns_of_the_overview_matrix(
    loaded: dict[str, Any], make_user: Any
) -> None:
    probe, (one, two) = loaded["probe"], loaded["clusters"]
    quiet, never, elsewhere = (ClusterFactory(name=n) for n in ("prod-3", "prod-4", "prod-5"))
    probe.clusters.add(quiet, never)
    long_ago = timezone.now() - timedelta(minutes=20)
    answer = post_samples(
        Client(), batch(probe.name, "prod-3", windows(long_ago, 3)), loaded["token"]
    )
    assert answer.status_code == 202
    ResidentTarget.objects.create(probe=probe, cluster=never)  # applied, nothing reported yet
    ResidentAlertRule.objects.create(name="slo", availability_below=50)
    assert resident_alerts_judge() == 1  # prod-2 is at 0 %

    # The table fallback draws them as the server does.
    page = login(make_user("viewer")).get("/dashboard/?render=table")
    html = page.content.decode()
    header = re.search(
        r'<th scope="col" class="case resident res-first" data-resident="(\d+)"', html
    )
    assert header and int(header.group(1)) == probe.pk
    assert "◉ etcd-resident</a></th>" in html
    assert "+ 1 resident probe (◉)" in html
    link = "/dashboard/resident/etcd-resident/"
    assert resident_cell(html, probe.pk, one.pk) == ("rcell res-up res-first", link, "90.0")
    assert resident_cell(html, probe.pk, two.pk)[0] == "rcell res-firing res-first"
    assert resident_cell(html, probe.pk, two.pk)[2] == "0.0"
    assert resident_cell(html, probe.pk, quiet.pk)[0] == "rcell res-stale res-first"
    assert resident_cell(html, probe.pk, never.pk)[0] == "rcell res-nodata res-first"
    # A cluster the probe does not run in has an empty cell, so the columns stay aligned.
    row = html[html.index(f'<tr data-cluster="{elsewhere.pk}">') :]
    assert row[: row.index("</tr>")].endswith('<td class="rcell res-none res-first"></td>')
    assert 'title="etcd-resident: up · 90.00 % ok over 5 min · p99 9.0 ms"' in html
    assert 'id="resident-legend"' in html and "resident-matrix.js" in html

    # grid.json (what grid.js draws on the overview): the same columns and cells, after
    # the cases; a cluster the probe does not run in has no cell.
    grid = login(make_user("viewer", "v3")).get("/dashboard/grid.json").json()
    probe.refresh_from_db()  # the alert rule gave it an alert case: its column names it
    assert probe.alert_case_id is not None
    assert grid["resident"]["columns"] == [[probe.pk, "etcd-resident", probe.alert_case_id]]
    cells = {c[1]: c for c in grid["resident"]["cells"] if c[0] == probe.pk}
    assert cells[one.pk][2:] == ["up", 90.0, 9.0, "ok"]
    assert cells[two.pk][2] == "firing" and cells[two.pk][3] == 0.0
    assert cells[two.pk][5] == "firing"
    assert (cells[quiet.pk][2], cells[never.pk][2]) == ("stale", "nodata")
    assert elsewhere.pk not in cells
    # The shell: grid.js draws the columns (resident prefix given), the legend waits hidden.
    shell = login(make_user("viewer", "v4")).get("/dashboard/").content.decode()
    assert 'data-resident-prefix="/dashboard/resident/x/"' in shell
    assert re.search(r'id="resident-legend"[^>]* hidden', shell)

    # The live script's refresh: the same states as JSON, without the case cells.
    state = login(make_user("viewer", "v2")).get(
        "/dashboard/state.json?scope=overview&part=resident"
    )
    assert state.status_code == 200
    body = state.json()
    assert "cells" not in body
    by_cluster = {c["cluster_id"]: c for c in body["resident"] if c["probe_id"] == probe.pk}
    assert {k: c["state"] for k, c in by_cluster.items()} == {
        one.pk: "up",
        two.pk: "firing",
        quiet.pk: "stale",
        never.pk: "nodata",
    }
    assert by_cluster[one.pk]["availability"] == 90.0
    assert by_cluster[two.pk]["alert_state"] == "firing"


@pytest.mark.django_db
def test_no_resident_columns_without_resident_probes(make_user: Any) -> None:
    ClusterFactory(name="prod-1")
    client = login(make_user("viewer"))
    html = client.get("/dashboard/?render=table").content.decode()
    assert "resident" not in html.split("<table", 1)[1].split("</table>", 1)[0]
    assert "resident-matrix.js" not in html and 'id="resident-legend"' not in html
    assert client.get("/dashboard/grid.json").json()["resident"] == {"columns": [], "cells": []}


@pytest.mark.django_db
def test_a_team_sees_only_its_clusters(loaded: dict[str, Any]) -> None:
    user = viewer_of("team-one")
    group = ClusterGroupFactory._meta.model.objects.get(name="team-one")
    group.members.add(loaded["clusters"][0])
    page = login(user).get("/dashboard/resident/etcd-resident/").content.decode()
    assert [c["name"] for c in chart_data(page)["clusters"]] == ["prod-1"]
    overview = login(user).get("/dashboard/?render=table").content.decode()
    probe, (one, two) = loaded["probe"], loaded["clusters"]
    assert f'id="r-{probe.pk}-{one.pk}"' in overview
    assert f'id="r-{probe.pk}-{two.pk}"' not in overview
    grid = login(user).get("/dashboard/grid.json").json()
    assert {c[1] for c in grid["resident"]["cells"]} == {one.pk}
    resync = login(user).get("/dashboard/state.json?scope=overview&part=resident").json()
    assert {c["cluster_id"] for c in resync["resident"]} == {one.pk}


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


@pytest.mark.django_db(transaction=True)
def test_a_resident_cell_change_is_pushed_to_overview_pages(live_layer: None) -> None:
    """Once per change of state, not once per batch; only to those who see the cluster."""
    one, two = ClusterFactory(name="prod-1"), ClusterFactory(name="prod-2")
    probe, token = make_probe(clusters=[one, two])
    everyone = User.objects.create_superuser("root", password="pw-For-tests-1")
    team = viewer_of("team-one")
    ClusterGroupFactory._meta.model.objects.get(name="team-one").members.add(one)
    push._overview_told.clear()

    async def scenario() -> None:
        from asgiref.sync import sync_to_async

        pages = [await connect(everyone), await connect(team)]
        for page in pages:
            assert (await subscribe(page, "overview"))["type"] == "subscribed"
        start = timezone.now() - timedelta(seconds=30)

        def send(cluster: str, offset: int, state: str) -> None:
            wins = windows(start + timedelta(seconds=offset), 2, state=state)
            assert (
                post_samples(Client(), batch(probe.name, cluster, wins), token).status_code == 202
            )

        await sync_to_async(send)("prod-1", 0, "up")
        await sync_to_async(send)("prod-1", 2, "up")  # same state: nothing new to tell
        await sync_to_async(send)("prod-1", 4, "down")
        await sync_to_async(send)("prod-2", 0, "down")
        expected = [
            {"type": "rcell", "probe_id": probe.pk, "cluster_id": one.pk, "state": "up"},
            {"type": "rcell", "probe_id": probe.pk, "cluster_id": one.pk, "state": "down"},
        ]
        other = {"type": "rcell", "probe_id": probe.pk, "cluster_id": two.pk, "state": "down"}
        assert await drain(pages[0]) == [*expected, other]
        assert await drain(pages[1]) == expected  # prod-2 is not the team's
        for page in pages:
            await page.disconnect()

    run_async(scenario)
