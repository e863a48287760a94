from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from apps.alerts.models import Alert
from apps.catalog.models import Case, CaseSet, CaseSetMembership
from apps.clusters.models import Cluster, ClusterGroup
from apps.runs.models import ProbeRun
from tests.factories import CaseFactory, ClusterFactory, ClusterGroupFactory, ProbeRunFactory


def finished_run(case: Case, cluster: Cluster, ok: bool, **kw: Any) -> ProbeRun:
    """A finished run; `ago` moves its creation (and finish) back in time."""
    ago = kw.pop("ago", timedelta(minutes=1))
    duration = kw.pop("duration_ms", 1000)
    error = kw.pop("error", "Failed to create pod sandbox: rpc error")
    steps = kw.pop(
        "steps",
        [{"name": "create", "ok": True, "duration_ms": 20}]
        + (
            [{"name": "ready", "ok": True, "duration_ms": duration - 20}]
            if ok
            else [{"name": "ready", "ok": False, "duration_ms": duration - 20, "error": error}]
        ),
    )
    run = ProbeRunFactory(
        case=case,
        cluster=cluster,
        state=kw.pop("state", "succeeded" if ok else "failed"),
        ok=ok,
        steps=steps,
        duration_ms=duration,
        errors=[] if ok else [error],
        **kw,
    )
    # created_at is auto_now_add: move it afterwards.
    when = timezone.now() - ago
    ProbeRun.objects.filter(pk=run.pk).update(created_at=when, finished_at=when)
    run.refresh_from_db()
    return run


def set_alert(case: Case, cluster: Cluster, run: ProbeRun | None, **kw: Any) -> Alert:
    alert, _ = Alert.objects.update_or_create(
        case=case,
        cluster=cluster,
        defaults={
            "latest_run": run,
            "latest_state": run.state if run else "",
            "latest_duration_ms": run.duration_ms if run else None,
            "last_finished_at": run.finished_at if run else None,
            **kw,
        },
    )
    return alert


@dataclass
class World:
    """Two regions, two groups (team-a: explicit members, team-b: label selector)."""

    cases: list[Case]
    a1: Cluster
    a2: Cluster
    b1: Cluster
    team_a: ClusterGroup
    team_b: ClusterGroup
    runs: dict[str, ProbeRun] = field(default_factory=dict)


@pytest.fixture
def world(db: None) -> World:
    cases = [CaseFactory(name="etcd-meta"), CaseFactory(name="pod-lifecycle")]
    a1 = ClusterFactory(name="prod-a1", region="eu-1", environment="prod")
    a2 = ClusterFactory(name="prod-a2", region="us-1", environment="prod")
    b1 = ClusterFactory(name="stage-b1", region="eu-1", environment="staging", labels={"team": "b"})
    team_a = ClusterGroupFactory(name="team-a")
    team_a.members.add(a1, a2)
    team_b = ClusterGroupFactory(name="team-b", selector={"team": "b"})
    world = World(cases, a1, a2, b1, team_a, team_b)
    etcd, pods = cases
    world.runs["a1-etcd"] = finished_run(etcd, a1, ok=True, duration_ms=100)
    world.runs["a1-pods"] = finished_run(pods, a1, ok=False, duration_ms=3000)
    world.runs["b1-etcd"] = finished_run(etcd, b1, ok=False, duration_ms=200)
    set_alert(etcd, a1, world.runs["a1-etcd"])
    set_alert(
        pods,
        a1,
        world.runs["a1-pods"],
        state="firing",
        severity="critical",
        step="ready",
        error="Failed to create pod sandbox: rpc error",
        root_cause="network",
        root_cause_summary="CNI or sandbox trouble on the node",
        firing_since=timezone.now() - timedelta(minutes=5),
    )
    set_alert(etcd, b1, world.runs["b1-etcd"], state="firing", severity="warning", step="ready")
    case_set = CaseSet.objects.create(name="core")
    CaseSetMembership.objects.create(case_set=case_set, case=etcd)
    return world


@pytest.fixture
def login(client: Client) -> Callable[[User], Client]:
    def do(user: User) -> Client:
        client.force_login(user)
        return client

    return do


@pytest.fixture
def restricted_user(world: World) -> User:
    """A staff user without global view permission, allowed team-b through its auth group."""
    group = Group.objects.create(name="team-b-oncall")
    world.team_b.viewer_groups.add(group)
    user = User.objects.create_user(username="bob", password="pw-For-tests-1", is_staff=True)
    user.groups.add(group)
    return user
