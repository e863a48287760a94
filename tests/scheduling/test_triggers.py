"""Schedule ticks, events and manual requests create the right runs, once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.clusters.models import Executor
from apps.runs.models import ProbeRun, RunState, Trigger
from apps.scheduling.models import Binding, Event
from apps.scheduling.services import binding_fire_schedule, event_record
from tests.factories import (
    BindingFactory,
    CaseFactory,
    CaseSetFactory,
    ClusterFactory,
    ClusterGroupFactory,
)

pytestmark = pytest.mark.django_db


def local(name: str, **labels: str) -> Any:
    return ClusterFactory(name=name, executor=Executor.LOCAL, kubeconfig="", labels=labels)


@pytest.fixture
def world() -> dict[str, Any]:
    a, b, c = local("a", env="prod"), local("b", env="prod"), local("c", env="dev")
    etcd, pods, off = (
        CaseFactory(name="etcd"),
        CaseFactory(name="pods"),
        CaseFactory(name="off", enabled=False),
    )
    cs = CaseSetFactory(name="core")
    cs.cases.set([pods, off])
    prod = ClusterGroupFactory(name="prod", selector={"env": "prod"})
    binding = BindingFactory(name="b1", interval_seconds=60)
    binding.groups.set([prod])
    binding.cases.set([etcd])
    binding.case_sets.set([cs])
    return {"a": a, "b": b, "c": c, "etcd": etcd, "pods": pods, "binding": binding}


def pairs() -> set[tuple[str, str]]:
    return set(ProbeRun.objects.values_list("case__name", "cluster__name"))


def test_a_tick_expands_groups_and_case_sets(world: dict[str, Any]) -> None:
    result = binding_fire_schedule(binding_id=world["binding"].pk)
    assert len(result.created) == 4
    assert pairs() == {("etcd", "a"), ("etcd", "b"), ("pods", "a"), ("pods", "b")}
    assert set(ProbeRun.objects.values_list("trigger", flat=True)) == {Trigger.SCHEDULE}
    assert set(ProbeRun.objects.values_list("binding", flat=True)) == {world["binding"].pk}


def test_a_repeated_tick_creates_nothing_twice(world: dict[str, Any]) -> None:
    now = timezone.now()
    first = binding_fire_schedule(binding_id=world["binding"].pk, now=now)
    again = binding_fire_schedule(binding_id=world["binding"].pk, now=now + timedelta(seconds=1))
    assert len(first.created) == 4
    assert again.created == [] and again.skipped == 0
    assert ProbeRun.objects.count() == 4
    assert Binding.objects.get(pk=world["binding"].pk).skipped_count == 0


def test_next_tick_skips_and_counts_while_the_previous_run_is_active(world: dict[str, Any]) -> None:
    now = timezone.now()
    binding_fire_schedule(binding_id=world["binding"].pk, now=now)
    ProbeRun.objects.filter(case__name="etcd").update(state=RunState.SUCCEEDED, finished_at=now)
    result = binding_fire_schedule(binding_id=world["binding"].pk, now=now + timedelta(seconds=60))
    assert len(result.created) == 2 and result.skipped == 2  # pods still active on a and b
    assert Binding.objects.get(pk=world["binding"].pk).skipped_count == 2
    assert ProbeRun.objects.filter(case__name="pods").count() == 2  # not stacked


def test_disabled_binding_and_disabled_clusters_fire_nothing(world: dict[str, Any]) -> None:
    world["a"].enabled = False
    world["a"].save()
    assert {c for _, c in set()} == set()
    binding_fire_schedule(binding_id=world["binding"].pk)
    assert {c for _, c in pairs()} == {"b"}
    Binding.objects.filter(pk=world["binding"].pk).update(enabled=False)
    assert (
        binding_fire_schedule(
            binding_id=world["binding"].pk, now=timezone.now() + timedelta(hours=1)
        ).created
        == []
    )


# ---------------------------------------------------------------- events


@pytest.fixture
def event_binding(world: dict[str, Any]) -> Binding:
    binding = BindingFactory(
        name="on-release",
        interval_seconds=None,
        event_triggers=[{"kind": "component_release", "component": "etcd"}, {"kind": "upgrade"}],
    )
    binding.clusters.set([world["a"], world["c"]])
    binding.cases.set([world["etcd"]])
    return binding


def test_event_fires_matching_bindings_for_that_cluster_only(
    world: dict[str, Any], event_binding: Binding, admin_api: APIClient
) -> None:
    response = admin_api.post(
        "/api/v1/events",
        {
            "cluster": "a",
            "kind": "component_release",
            "component": "etcd",
            "detail": {"version": "3.5.12"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["runs_created"] == 1 and len(body["runs"]) == 1
    run = ProbeRun.objects.get(pk=body["runs"][0])
    assert (run.case.name, run.cluster.name, run.trigger, run.binding_id) == (
        "etcd",
        "a",
        "event",
        event_binding.pk,
    )
    event = Event.objects.get(pk=body["id"])
    assert run.event_id == event.pk and event.detail == {"version": "3.5.12"}


@pytest.mark.parametrize(
    ("cluster", "kind", "component", "fires"),
    [
        ("a", "component_release", "apiserver", False),  # other component
        ("a", "upgrade", "", True),  # kind-only trigger matches any component
        ("a", "upgrade", "kubelet", True),
        ("b", "upgrade", "", False),  # not a target of the binding
        ("c", "my_custom_event", "", False),
    ],
)
def test_event_matching(
    world: dict[str, Any],
    event_binding: Binding,
    cluster: str,
    kind: str,
    component: str,
    fires: bool,
) -> None:
    event, result = event_record(cluster=world[cluster], kind=kind, component=component)
    assert bool(result.created) is fires
    assert event.runs_created == len(result.created)


def test_event_reaches_bindings_through_groups(world: dict[str, Any]) -> None:
    binding = BindingFactory(
        name="grp", interval_seconds=None, event_triggers=[{"kind": "cluster_change"}]
    )
    binding.groups.set([ClusterGroupFactory(selector={"env": "dev"})])
    binding.cases.set([world["pods"]])
    _, result = event_record(cluster=world["c"], kind="cluster_change")
    assert len(result.created) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cluster": "nope", "kind": "upgrade"}, "cluster"),
        ({"cluster": "a", "kind": "Not A Word"}, "kind"),
        ({"cluster": "a"}, "kind"),
        ({"cluster": "a", "kind": "upgrade", "component": "Bad Comp"}, "component"),
        ({"cluster": "a", "kind": "upgrade", "detail": "text"}, "detail"),
    ],
)
def test_event_validation(
    world: dict[str, Any], admin_api: APIClient, body: dict[str, Any], field: str
) -> None:
    response = admin_api.post("/api/v1/events", body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not Event.objects.exists()


def test_viewer_cannot_post_events_but_operator_can(world: dict[str, Any], api_client_for) -> None:  # type: ignore[no-untyped-def]
    body = {"cluster": "a", "kind": "upgrade"}
    assert api_client_for("viewer").post("/api/v1/events", body, format="json").status_code == 403
    assert api_client_for("operator").post("/api/v1/events", body, format="json").status_code == 201


# ---------------------------------------------------------------- manual


def test_post_runs_case_on_cluster(world: dict[str, Any], api_client_for) -> None:  # type: ignore[no-untyped-def]
    operator = api_client_for("operator")
    response = operator.post("/api/v1/runs/", {"case": "etcd", "cluster": "c"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 1
    run = ProbeRun.objects.get()
    assert (run.trigger, run.cluster.name, run.requested_by.username) == (
        "manual",
        "c",
        "operator-user",
    )


def test_post_runs_case_set_on_group(world: dict[str, Any], admin_api: APIClient) -> None:
    response = admin_api.post("/api/v1/runs/", {"case_set": "core", "group": "prod"}, format="json")
    assert response.status_code == 201
    assert pairs() == {("pods", "a"), ("pods", "b")}  # the disabled case is left out


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cluster": "a"}, "case"),
        ({"case": "etcd", "case_set": "core", "cluster": "a"}, "case"),
        ({"case": "etcd"}, "cluster"),
        ({"case": "etcd", "cluster": "a", "group": "prod"}, "cluster"),
        ({"case": "nope", "cluster": "a"}, "case"),
        ({"case": "off", "cluster": "a"}, "case"),
    ],
)
def test_post_runs_validation(
    world: dict[str, Any], admin_api: APIClient, body: dict[str, Any], field: str
) -> None:
    response = admin_api.post("/api/v1/runs/", body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not ProbeRun.objects.exists()


def test_viewer_cannot_request_runs(world: dict[str, Any], api_client_for) -> None:  # type: ignore[no-untyped-def]
    response = api_client_for("viewer").post(
        "/api/v1/runs/", {"case": "etcd", "cluster": "a"}, format="json"
    )
    assert response.status_code == 403
    assert not ProbeRun.objects.exists()


@pytest.mark.parametrize(
    ("url", "action", "pick", "expected"),
    [
        ("/admin/clusters/cluster/", "run_now", "a", {("etcd", "a"), ("pods", "a")}),
        ("/admin/catalog/case/", "run_now", "etcd", {("etcd", "a"), ("etcd", "b")}),
        ("/admin/catalog/caseset/", "run_now", "core", {("pods", "a"), ("pods", "b")}),
        (
            "/admin/scheduling/binding/",
            "run_now",
            "b1",
            {("etcd", "a"), ("etcd", "b"), ("pods", "a"), ("pods", "b")},
        ),
    ],
)
def test_admin_run_now(
    world: dict[str, Any],
    client,
    make_user,
    url: str,
    action: str,
    pick: str,
    expected: set[tuple[str, str]],
) -> None:  # type: ignore[no-untyped-def]
    from django.apps import apps

    model = {
        "cluster": "clusters.Cluster",
        "case": "catalog.Case",
        "caseset": "catalog.CaseSet",
        "binding": "scheduling.Binding",
    }[url.split("/")[3]]
    obj = apps.get_model(model).objects.get(name=pick)
    client.force_login(make_user("operator"))
    response = client.post(url, {"action": action, "_selected_action": [obj.pk]}, follow=True)
    assert response.status_code == 200
    assert pairs() == expected
    assert f"Started {len(expected)} run(s)" in response.content.decode()
    assert set(ProbeRun.objects.values_list("trigger", flat=True)) == {"manual"}


def test_admin_run_now_needs_the_run_permission(world: dict[str, Any], client, make_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(make_user("viewer"))
    response = client.post(
        "/admin/clusters/cluster/",
        {"action": "run_now", "_selected_action": [world["a"].pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert not ProbeRun.objects.exists()
