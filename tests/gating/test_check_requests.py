"""Gate checks without a worker: what a request starts, refuses, and how a check is decided."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from apps.gating.models import CheckState, GateCheck, GateDecision
from apps.gating.services import gate_check_refresh, gate_check_start
from apps.runs.models import ProbeRun, RunState
from apps.scheduling.models import Event
from tests.factories import ClusterFactory
from tests.gating.helpers import cases, gating_set, policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(api_client_for: Callable[[str], APIClient]) -> APIClient:
    return api_client_for("operator")


@pytest.fixture
def world() -> dict:  # type: ignore[type-arg]
    cluster = ClusterFactory(name="prod-1")
    ClusterFactory(name="off-1", enabled=False)
    etcd, pods = cases(2)
    gating_set(pods, name="pods")
    policy([("etcd", gating_set(etcd, pods, name="etcd-set"))])
    return {"cluster": cluster, "etcd": etcd, "pods": pods}


def test_a_check_creates_one_gate_run_per_case_and_answers_202(
    operator: APIClient,
    world: dict,  # type: ignore[type-arg]
) -> None:
    answer = operator.post("/api/v1/gate/checks", {"cluster": "prod-1", "component": "etcd"})
    assert answer.status_code == 202, answer.content
    check = GateCheck.objects.get(pk=answer.json()["id"])
    runs = ProbeRun.objects.filter(pk__in=check.run_ids)
    assert {r.case_id for r in runs} == {world["etcd"].pk, world["pods"].pk}
    assert {r.trigger for r in runs} == {"gate"}
    assert {r.requested_by.username for r in runs} == {"operator-user"}
    assert check.timeout_seconds == 300 and check.state == CheckState.RUNNING


def test_a_case_already_running_is_waited_for_not_started_twice(
    operator: APIClient,
    world: dict,  # type: ignore[type-arg]
) -> None:
    busy = ProbeRun.objects.create(
        case=world["etcd"], cluster=world["cluster"], trigger="schedule", state=RunState.RUNNING
    )
    answer = operator.post("/api/v1/gate/checks", {"cluster": "prod-1", "component": "etcd"})
    check = GateCheck.objects.get(pk=answer.json()["id"])
    assert busy.pk in check.run_ids and len(check.run_ids) == 2
    assert ProbeRun.objects.filter(case=world["etcd"]).count() == 1


def test_a_check_is_decided_once_at_its_deadline(world: dict) -> None:  # type: ignore[type-arg]
    check = gate_check_start(cluster=world["cluster"], component="etcd", timeout_seconds=30)
    assert gate_check_refresh(check_id=check.pk).state == CheckState.RUNNING
    late = check.deadline + timedelta(seconds=1)
    decided = gate_check_refresh(check_id=check.pk, now=late)
    assert decided.state == CheckState.TIMED_OUT and decided.verdict == "unknown"
    assert gate_check_refresh(check_id=check.pk, now=late).verdict == "unknown"
    [decision] = GateDecision.objects.filter(gate_check=check)
    assert {r["kind"] for r in decision.reasons} == {"running"}
    assert decision.source == "check"


def test_a_check_with_no_case_is_decided_at_once(operator: APIClient, world: dict) -> None:  # type: ignore[type-arg]
    gating_set(name="empty")
    answer = operator.post(
        "/api/v1/gate/checks",
        {"cluster": "prod-1", "case_set": "empty", "wait": True, "timeout": 5},
    )
    assert answer.status_code == 200
    assert answer.json()["verdict"] == "unknown"
    assert answer.json()["reasons"][0]["kind"] == "no_cases"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "cluster", "This field is required."),
        ({"cluster": "nope"}, "cluster", "No cluster named 'nope'."),
        ({"cluster": "off-1"}, "cluster", "Cluster 'off-1' is disabled."),
        ({"cluster": "prod-1", "timeout": 0}, "timeout", "Give between 1 and 900 seconds."),
        ({"cluster": "prod-1", "timeout": 901}, "timeout", "Give between 1 and 900 seconds."),
        ({"cluster": "prod-1", "timeout": "soon"}, "timeout", "A valid integer is required."),
        ({"cluster": "prod-1", "wait": "maybe"}, "wait", "Must be a valid boolean."),
        ({"cluster": "prod-1", "case_set": "nope"}, "case_set", "No case set named 'nope'."),
        (
            {"cluster": "prod-1", "component": "etcd", "case_set": "pods"},
            "case_set",
            "Give a component or a case set, not both.",
        ),
        ({"cluster": "prod-1", "component": "ETCD!"}, "component", "Must be a lowercase word"),
        ({"cluster": "prod-1", "component": "etdc"}, "component", "names the component 'etdc'"),
    ],
)
def test_bad_check_requests_are_400_and_start_nothing(
    operator: APIClient,
    world: dict,  # type: ignore[type-arg]
    body: dict,  # type: ignore[type-arg]
    field: str,
    message: str,
) -> None:
    answer = operator.post("/api/v1/gate/checks", body, format="json")
    assert answer.status_code == 400
    assert message in answer.json()[field][0]
    assert not GateCheck.objects.exists() and not ProbeRun.objects.exists()


def test_a_viewer_may_ask_but_not_run_a_check(
    api_client_for: Callable[[str], APIClient],
    world: dict,  # type: ignore[type-arg]
) -> None:
    viewer = api_client_for("viewer")
    assert viewer.get("/api/v1/gate", {"cluster": "prod-1"}).status_code == 200
    refused = viewer.post("/api/v1/gate/checks", {"cluster": "prod-1"})
    assert refused.status_code == 403 and "runs.run_probe" in refused.json()["detail"]
    assert APIClient().post("/api/v1/gate/checks", {"cluster": "prod-1"}).status_code == 401
    assert viewer.get("/api/v1/gate/checks/999").status_code == 404


def test_a_component_release_event_with_gate_starts_a_check(
    operator: APIClient,
    world: dict,  # type: ignore[type-arg]
) -> None:
    body = {
        "cluster": "prod-1",
        "kind": "component_release",
        "component": "etcd",
        "detail": {"version": "3.6.1", "gate": True},
    }
    answer = operator.post("/api/v1/events", body, format="json")
    assert answer.status_code == 201, answer.content
    check = GateCheck.objects.get(pk=answer.json()["detail"]["gate_check"])
    event = Event.objects.get(pk=answer.json()["id"])
    assert check.event == event and check.component == "etcd"
    assert event.detail["gate_check"] == check.pk
    assert set(ProbeRun.objects.filter(event=event).values_list("trigger", flat=True)) == {"gate"}
    polled = operator.get(f"/api/v1/gate/checks/{check.pk}").json()
    assert polled["event"] == event.pk and polled["state"] == "running"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "upgrade", "detail": {"gate": True}}, "detail", "only on a component_release"),
        ({"kind": "component_release", "detail": {"gate": "yes"}}, "detail", "true or false"),
        (
            {"kind": "component_release", "component": "etdc", "detail": {"gate": True}},
            "component",
            "names the component 'etdc'",
        ),
    ],
)
def test_bad_gate_events_are_400_and_store_nothing(
    operator: APIClient,
    world: dict,  # type: ignore[type-arg]
    body: dict,  # type: ignore[type-arg]
    field: str,
    message: str,
) -> None:
    answer = operator.post("/api/v1/events", {"cluster": "prod-1", **body}, format="json")
    assert answer.status_code == 400, answer.content
    assert message in str(answer.json()[field])
    assert not Event.objects.exists() and not GateCheck.objects.exists()
