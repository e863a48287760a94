"""Dashboard pages: what they show, the DOM contract with the live script, actions, access."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from apps.alerts.models import Alert, AlertState, Silence
from apps.dashboard import access
from apps.dashboard.selectors import cluster_case, matrix, stats
from apps.runs.models import ProbeRun
from apps.runs.rollups import rollups_advance
from apps.scheduling.models import Event
from tests.dashboard.conftest import World, finished_run, set_alert

pytestmark = pytest.mark.django_db

Login = Callable[[User], Client]


def cell_tags(html: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(r'<td id="(c-\d+-\d+)"[^>]*>', html)}


def test_root_redirects_and_anonymous_goes_to_login(client: Client, world: World) -> None:
    assert client.get("/").headers["Location"] == "/dashboard/"
    run = world.runs["a1-pods"]
    for url in [
        "/dashboard/",
        "/dashboard/clusters/prod-a1/",
        "/dashboard/cases/etcd-meta/",
        f"/dashboard/runs/{run.pk}/",
        "/dashboard/alerts/",
        "/dashboard/state.json?scope=overview",
    ]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/admin/login/?next=/dashboard/"), url


def test_overview_matrix_cells_follow_the_contract(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    html = login(make_user("viewer")).get("/dashboard/?render=table").content.decode()
    etcd, pods = world.cases
    cells = cell_tags(html)
    assert len(cells) == 2 * 3  # every (case, cluster), results or not
    failing = world.runs["a1-pods"]
    assert cells[f"c-{pods.pk}-{world.a1.pk}"] == (
        f'<td id="c-{pods.pk}-{world.a1.pk}" class="cell run-failed alert-firing" '
        f'data-severity="critical" data-run="{failing.pk}">'
    )
    assert f'href="/dashboard/runs/{failing.pk}/" title="failed; alert firing (critical)"' in html
    assert 'class="cell run-succeeded alert-ok"' in cells[f"c-{etcd.pk}-{world.a1.pk}"]
    # No result and no binding (this world has none): marked as not scheduled.
    assert cells[f"c-{etcd.pk}-{world.a2.pk}"] == (
        f'<td id="c-{etcd.pk}-{world.a2.pk}" class="cell run-unscheduled alert-ok" '
        'data-severity="" data-run="">'
    )
    assert 'data-live-scope="overview"' in html
    assert "/static/dashboard/live.js" in html and " defer" in html
    # Counters equal the firing cells by severity, as the live script recounts them.
    assert '<span data-counter="firing-critical">1</span>' in html
    assert '<span data-counter="firing-warning">1</span>' in html
    assert '<span data-counter="firing-info">0</span>' in html
    # Rows grouped by region (default), sections in name order.
    assert html.index(">eu-1 <small>") < html.index(">us-1 <small>")


def test_overview_filters_and_grouping(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    client = login(make_user("viewer"))
    etcd, pods = world.cases

    def rows(query: str) -> set[str]:
        html = client.get("/dashboard/?render=table&" + query).content.decode()
        return set(re.findall(r'href="/dashboard/clusters/([^/]+)/"', html))

    assert rows("") == {"prod-a1", "prod-a2", "stage-b1"}
    assert rows("region=us-1") == {"prod-a2"}
    assert rows("environment=staging") == {"stage-b1"}
    assert rows("group=team-a") == {"prod-a1", "prod-a2"}
    assert rows("group=team-b") == {"stage-b1"}  # by label selector
    assert rows("group=nope") == set()
    assert rows("q=a2") == {"prod-a2"}
    assert rows("state=failing") == {"prod-a1", "stage-b1"}
    assert rows("state=ok") == {"prod-a2"}
    html = client.get("/dashboard/?render=table&case_set=core").content.decode()
    assert f'id="c-{etcd.pk}-' in html and f'id="c-{pods.pk}-' not in html
    # Bad input is ignored and said so, never a 500.
    response = client.get("/dashboard/?render=table&state=purple&group_by=moon")
    assert response.status_code == 200 and b"Ignored:" in response.content

    html = client.get("/dashboard/?render=table&group_by=group").content.decode()
    assert html.index(">team-a <small>2 clusters") < html.index(">team-b <small>1 cluster")
    assert html.count(f'id="c-{etcd.pk}-{world.a1.pk}"') == 1


def test_group_by_group_puts_each_cluster_once(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    world.team_a.members.add(world.b1)  # b1 is in team-a (explicit) and team-b (labels)
    html = (
        login(make_user("viewer")).get("/dashboard/?render=table&group_by=group").content.decode()
    )
    assert html.count(f'data-cluster="{world.b1.pk}"') == 1
    assert "also in team-b" in html
    assert ">team-b <small>" not in html  # nothing left for it


def test_cluster_page_stats_timeline_and_alerts(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    etcd, pods = world.cases
    # etcd on a1: runs of 100 (fixture), 200, 300, 400 ms within the hour, one failure
    # a day ago (outside 1 h, inside 24 h) and one 3 days ago (7 d only).
    for ms in (200, 300, 400):
        finished_run(etcd, world.a1, ok=True, duration_ms=ms, ago=timedelta(minutes=10))
    finished_run(etcd, world.a1, ok=False, duration_ms=5000, ago=timedelta(hours=20))
    finished_run(etcd, world.a1, ok=True, duration_ms=9000, ago=timedelta(days=3))
    finished_run(etcd, world.a1, ok=True, duration_ms=1, ago=timedelta(days=9))  # too old
    Event.objects.create(cluster=world.a1, kind="upgrade", component="kubelet")
    rollups_advance()  # 24 h and 7 d read the hourly rollups (apps/runs/rollups.py)

    page = cluster_case.cluster_page(cluster=world.a1, filters=matrix.Filters())
    line = next(li for li in page.lines if li.other_id == etcd.pk)
    h1, h24, d7 = line.stats["1h"], line.stats["24h"], line.stats["7d"]
    assert (h1.runs, h1.succeeded) == (4, 4)
    assert h1.p50_ms == pytest.approx(250.0)  # percentile_cont of 100..400
    assert h1.p95_ms == pytest.approx(385.0)
    assert (h24.runs, h24.succeeded) == (5, 4)
    assert h24.success_rate == pytest.approx(80.0)
    assert (d7.runs, d7.succeeded) == (6, 5)

    html = login(make_user("viewer")).get("/dashboard/clusters/prod-a1/").content.decode()
    assert f'data-live-scope="cluster:{world.a1.pk}"' in html
    assert f'id="c-{etcd.pk}-{world.a1.pk}" class="cell run-succeeded alert-ok"' in html
    assert f'id="c-{pods.pk}-{world.a1.pk}" class="cell run-failed alert-firing"' in html
    assert "80.0%" in html and "250 ms" in html
    assert "event <b>upgrade: kubelet</b>" in html
    assert html.index("event <b>upgrade") < html.index(f"run {world.runs['a1-pods'].pk}</a>")
    assert "CNI or sandbox trouble on the node" in html  # open alert with its hint
    assert '<span data-counter="firing-critical">1</span>' in html


def test_python_percentile_matches_postgres() -> None:
    assert stats.percentile([100, 200, 300, 400], 0.5) == pytest.approx(250.0)
    assert stats.percentile([100, 200, 300, 400], 0.95) == pytest.approx(385.0)
    assert stats.percentile([], 0.5) is None


def test_case_page_rows_and_step_charts(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    etcd, _ = world.cases
    for i in range(6):
        finished_run(
            etcd,
            world.a1,
            ok=True,
            steps=[
                {"name": "put", "ok": True, "duration_ms": 10 + i},
                {"name": "get", "ok": True, "duration_ms": 5},
            ],
            ago=timedelta(minutes=30 * i),
        )
    response = login(make_user("viewer")).get("/dashboard/cases/etcd-meta/")
    html = response.content.decode()
    assert f'data-live-scope="case:{etcd.pk}"' in html
    assert f'id="c-{etcd.pk}-{world.a1.pk}"' in html and f'id="c-{etcd.pk}-{world.b1.pk}"' in html
    assert f'id="c-{etcd.pk}-{world.a2.pk}"' not in html  # no result for it there
    assert "/static/vendor/uplot/uPlot.iife.min.js" in html
    assert "/static/dashboard/charts.js" in html
    charts = json.loads(
        re.search(r'<script id="step-latency" type="application/json">(.*?)</script>', html).group(
            1
        )
    )
    names = [s["name"] for s in charts["steps"]]
    assert names[:2] == ["create", "ready"] or "put" in names
    put = next(s for s in charts["steps"] if s["name"] == "put")
    assert len(put["p50"]) == len(charts["x"]) and charts["runs"] == 8
    assert max(v for v in put["p95"] if v is not None) <= 15


def test_run_page_and_fragment(login: Login, make_user: Callable[..., User], world: World) -> None:
    run = world.runs["a1-pods"]
    ProbeRun.objects.filter(pk=run.pk).update(
        log_tail="pulling image\nsandbox failed",
        reason="",
        metrics={"create_ms": 20},
        diagnostics={
            "pod": "probe-1",
            "phase": "Failed",
            "events": [
                {
                    "type": "Warning",
                    "reason": "FailedCreatePodSandBox",
                    "message": "cni",
                    "count": 3,
                }
            ],
        },
    )
    client = login(make_user("viewer"))
    html = client.get(f"/dashboard/runs/{run.pk}/").content.decode()
    assert f'data-live-scope="run:{run.pk}"' in html
    assert '<div id="run-detail">' in html
    assert "Failed at step <b>ready</b>" in html
    assert "Failed to create pod sandbox: rpc error" in html
    assert 'class="step-failed"' in html
    assert "FailedCreatePodSandBox" in html and "sandbox failed" in html and "create_ms" in html
    assert "CNI or sandbox trouble on the node" in html  # the alert's hint
    assert "Run again" not in html  # viewers may not run probes

    fragment = client.get(f"/dashboard/runs/{run.pk}/?fragment=1").content.decode()
    assert "<body" not in fragment and 'id="run-detail"' not in fragment
    assert "Failed at step <b>ready</b>" in fragment


def test_run_again(login: Login, make_user: Callable[..., User], world: World) -> None:
    run = world.runs["a1-pods"]
    url = f"/dashboard/runs/{run.pk}/run-again/"
    viewer = login(make_user("viewer"))
    assert viewer.post(url).status_code == 403
    operator = login(make_user("operator"))
    assert b"Run again" in operator.get(f"/dashboard/runs/{run.pk}/").content
    response = operator.post(url)
    new = ProbeRun.objects.exclude(pk__in=[r.pk for r in world.runs.values()]).get()
    assert response.status_code == 302
    assert response.headers["Location"] == f"/dashboard/runs/{new.pk}/"
    assert (new.case_id, new.cluster_id, new.trigger, new.state) == (
        run.case_id,
        run.cluster_id,
        "manual",
        "pending",
    )
    # The new run is still active: a second click starts nothing.
    operator.post(url)
    assert ProbeRun.objects.count() == len(world.runs) + 1
    assert operator.get(url).status_code == 405


def test_alerts_page_and_actions(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    etcd, pods = world.cases
    firing = Alert.objects.get(case=pods, cluster=world.a1)
    viewer = login(make_user("viewer"))
    html = viewer.get("/dashboard/alerts/").content.decode()
    assert 'data-live-scope="alerts"' in html
    assert f'id="alert-{firing.pk}"' in html
    assert "Acknowledge</button>" not in html and "Silence</button>" not in html
    assert (
        viewer.post(f"/dashboard/alerts/{firing.pk}/acknowledge/", {"note": "x"}).status_code == 403
    )
    assert viewer.post(f"/dashboard/alerts/{firing.pk}/silence/", {"hours": 1}).status_code == 403

    operator = login(make_user("operator"))
    html = operator.get("/dashboard/alerts/").content.decode()
    assert "Acknowledge</button>" in html and "Silence</button>" in html
    response = operator.post(
        f"/dashboard/alerts/{firing.pk}/acknowledge/", {"note": "on it", "hours": "2"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/dashboard/alerts/"
    firing.refresh_from_db()
    assert firing.state == AlertState.ACKNOWLEDGED and firing.ack_note == "on it"
    assert firing.ack_until is not None
    assert firing.ack_until - timezone.now() > timedelta(hours=1, minutes=59)

    other = Alert.objects.get(case=etcd, cluster=world.b1)
    operator.post(f"/dashboard/alerts/{other.pk}/silence/", {"hours": "3", "comment": "maint"})
    silence = Silence.objects.get()
    assert silence.matchers == [
        {"name": "cluster", "value": "stage-b1"},
        {"name": "case", "value": "etcd-meta"},
    ]
    assert silence.comment == "maint" and silence.created_by.username == "operator-user"
    # Bad input: a clear message, nothing stored.
    response = operator.post(f"/dashboard/alerts/{other.pk}/silence/", {"hours": "-1"}, follow=True)
    assert b"Not silenced: hours" in response.content and Silence.objects.count() == 1
    # Acknowledging an alert that is not firing says why.
    ok = Alert.objects.get(case=etcd, cluster=world.a1)
    response = operator.post(f"/dashboard/alerts/{ok.pk}/acknowledge/", {}, follow=True)
    assert b"Not acknowledged: only a firing alert" in response.content


def test_state_json_snapshot(login: Login, make_user: Callable[..., User], world: World) -> None:
    etcd, pods = world.cases
    client = login(make_user("viewer"))
    data = client.get("/dashboard/state.json?scope=overview").json()
    by_key = {(c["case_id"], c["cluster_id"]): c for c in data["cells"]}
    assert by_key[(pods.pk, world.a1.pk)] == {
        "case_id": pods.pk,
        "cluster_id": world.a1.pk,
        "run_state": "failed",
        "alert_state": "firing",
        "severity": "critical",
        "run_id": world.runs["a1-pods"].pk,
    }
    assert len(by_key) == 3  # cells with a result; the others stay run-none
    filtered = client.get("/dashboard/state.json?scope=overview&region=us-1").json()
    assert filtered["cells"] == []
    cluster = client.get(f"/dashboard/state.json?scope=cluster:{world.b1.pk}").json()
    assert [(c["case_id"], c["cluster_id"]) for c in cluster["cells"]] == [(etcd.pk, world.b1.pk)]
    case = client.get(f"/dashboard/state.json?scope=case:{pods.pk}").json()
    assert [(c["case_id"], c["cluster_id"]) for c in case["cells"]] == [(pods.pk, world.a1.pk)]
    assert client.get("/dashboard/state.json?scope=bogus").status_code == 400
    assert client.get("/dashboard/state.json?scope=cluster:999999").status_code == 404


# ------------------------------------------------------------------ access


def test_access_rules(make_user: Callable[..., User], world: World, restricted_user: User) -> None:
    admin = User.objects.create_superuser("root", password="pw-For-tests-1")
    assert access.visible_cluster_ids(admin) is None
    assert access.visible_cluster_ids(make_user("viewer")) is None  # clusters.view_cluster
    assert access.visible_cluster_ids(restricted_user) == {world.b1.pk}  # by label selector
    world.team_b.members.add(world.a2)  # and explicit members
    assert access.visible_cluster_ids(restricted_user) == {world.b1.pk, world.a2.pk}
    assert access.can_see_cluster(restricted_user, world.b1.pk)
    assert not access.can_see_cluster(restricted_user, world.a1.pk)
    assert set(access.visible_clusters(restricted_user)) == {world.b1, world.a2}
    nobody = User.objects.create_user("nobody", password="pw-For-tests-1", is_staff=True)
    assert access.visible_cluster_ids(nobody) == set()
    assert not access.can_see_cluster(nobody, world.b1.pk)


def test_access_costs_one_or_two_queries(
    django_assert_max_num_queries: Callable[..., object], world: World, restricted_user: User
) -> None:
    user = User.objects.get(pk=restricted_user.pk)
    user.has_perm("clusters.view_cluster")  # Django's own permission cache, filled once
    with django_assert_max_num_queries(2):  # type: ignore[operator]
        access.visible_cluster_ids(user)
    with django_assert_max_num_queries(2):  # type: ignore[operator]
        access.can_see_cluster(user, world.b1.pk)


def test_restricted_user_sees_only_their_clusters_everywhere(
    login: Login, world: World, restricted_user: User
) -> None:
    _, pods = world.cases
    client = login(restricted_user)
    html = client.get("/dashboard/?render=table").content.decode()
    assert set(re.findall(r'href="/dashboard/clusters/([^/]+)/"', html)) == {"stage-b1"}
    assert "prod-a1" not in html and "prod-a2" not in html
    assert '<span data-counter="firing-critical">0</span>' in html  # a1's critical is not theirs
    assert '<span data-counter="firing-warning">1</span>' in html
    assert "team-a" not in html  # only their groups are offered

    assert client.get("/dashboard/clusters/stage-b1/").status_code == 200
    assert client.get("/dashboard/clusters/prod-a1/").status_code == 404
    assert client.get("/dashboard/clusters/no-such/").status_code == 404
    assert client.get(f"/dashboard/runs/{world.runs['b1-etcd'].pk}/").status_code == 200
    assert client.get(f"/dashboard/runs/{world.runs['a1-pods'].pk}/").status_code == 404
    assert client.get(f"/dashboard/runs/{world.runs['a1-pods'].pk}/?fragment=1").status_code == 404

    case_html = client.get("/dashboard/cases/etcd-meta/").content.decode()
    assert "stage-b1" in case_html and "prod-a1" not in case_html
    assert "prod-a1" not in client.get("/dashboard/cases/pod-lifecycle/").content.decode()

    alerts_html = client.get("/dashboard/alerts/").content.decode()
    assert "stage-b1" in alerts_html and "prod-a1" not in alerts_html
    hidden = Alert.objects.get(case=pods, cluster=world.a1)
    assert client.post(f"/dashboard/alerts/{hidden.pk}/acknowledge/").status_code == 404

    data = client.get("/dashboard/state.json?scope=overview").json()
    assert {c["cluster_id"] for c in data["cells"]} == {world.b1.pk}
    assert client.get(f"/dashboard/state.json?scope=cluster:{world.a1.pk}").status_code == 404
    case = client.get(f"/dashboard/state.json?scope=case:{pods.pk}").json()
    assert case["cells"] == []


def test_user_without_any_group_sees_nothing(login: Login, world: World) -> None:
    user = User.objects.create_user("lonely", password="pw-For-tests-1", is_staff=True)
    client = login(user)
    html = client.get("/dashboard/?render=table").content.decode()
    assert 'id="c-' not in html and "Nothing to show" in html
    assert client.get("/dashboard/clusters/stage-b1/").status_code == 404
    assert client.get("/dashboard/state.json").json() == {"scope": "overview", "cells": []}


def test_disabled_clusters_and_cases_leave_the_overview(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    etcd, pods = world.cases
    world.a2.enabled = False
    world.a2.save()
    pods.enabled = False
    pods.save()
    html = login(make_user("viewer")).get("/dashboard/?render=table").content.decode()
    assert "prod-a2" not in html and f'id="c-{pods.pk}-' not in html
    set_alert(etcd, world.a2, None)
    assert login(make_user("viewer", "v2")).get("/dashboard/clusters/prod-a2/").status_code == 200


def test_live_script_missing_from_the_manifest_does_not_break_pages(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    from unittest import mock

    from apps.dashboard.templatetags import dashboard as tags

    with mock.patch.object(tags, "static", side_effect=ValueError("Missing manifest entry")):
        assert tags.optional_static("dashboard/live.js") == "/static/dashboard/live.js"
    assert login(make_user("viewer")).get("/dashboard/?render=table").status_code == 200


def test_cluster_group_admin_edits_viewer_groups(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    from django.contrib.auth.models import Group

    client = login(make_user("admin"))
    html = client.get(f"/admin/clusters/clustergroup/{world.team_a.pk}/change/").content.decode()
    assert 'name="viewer_groups"' in html
    oncall = Group.objects.create(name="team-a-oncall")
    response = client.post(
        f"/admin/clusters/clustergroup/{world.team_a.pk}/change/",
        {
            "name": "team-a",
            "description": "",
            "members": [world.a1.pk, world.a2.pk],
            "selector": "{}",
            "viewer_groups": [oncall.pk],
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(world.team_a.viewer_groups.all()) == [oncall]
