"""GET /api/v1/gate: allow, deny or unknown from the latest results, with reasons."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from apps.alerts.models import Alert, AlertState
from apps.alerts.silences import silence_create
from apps.core.models import ApiToken
from apps.core.said import render_items
from apps.gating.models import GateDecision
from apps.runs.models import RunState
from tests.factories import BindingFactory, ClusterFactory, ClusterGroupFactory
from tests.gating.helpers import cases, finished, gating_set, policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(api_client_for: Callable[[str], APIClient]) -> APIClient:
    return api_client_for("viewer")


def ask(client: APIClient, cluster: str, component: str = "") -> dict:  # type: ignore[type-arg]
    query = {"cluster": cluster, **({"component": component} if component else {})}
    answer = client.get("/api/v1/gate", query)
    assert answer.status_code == 200, answer.content
    return answer.json()  # type: ignore[no-any-return]


def test_denies_while_a_gating_case_fails_and_allows_after_it_recovers(viewer: APIClient) -> None:
    cluster = ClusterFactory(name="prod-1")
    etcd, pods = cases(2)
    policy([("etcd", gating_set(etcd, pods))])
    finished(pods, cluster)
    finished(etcd, cluster, RunState.FAILED, step="put", error="connection refused")

    denied = ask(viewer, "prod-1", "etcd")
    assert denied["verdict"] == "deny"
    [reason] = denied["reasons"]
    assert reason["kind"] == "failing" and reason["case"] == etcd.name
    assert reason["step"] == "put" and reason["error"] == "connection refused"
    assert f"{etcd.name}: failed at step 'put'" in reason["message"]
    assert {c["case"]: c["verdict"] for c in denied["cases"]} == {
        etcd.name: "deny",
        pods.name: "allow",
    }

    finished(etcd, cluster)  # recovered: its newest result passes
    allowed = ask(viewer, "prod-1", "etcd")
    assert allowed["verdict"] == "allow" and allowed["reasons"] == []
    assert allowed["policy"] == "p"


def test_stale_or_missing_results_give_unknown(viewer: APIClient) -> None:
    cluster = ClusterFactory(name="prod-1")
    old, never = cases(2)
    policy([("", gating_set(old, never))], max_result_age_seconds=600)
    finished(old, cluster, at=timezone.now() - timedelta(minutes=30))

    answer = ask(viewer, "prod-1")
    assert answer["verdict"] == "unknown"
    kinds = {r["case"]: r["kind"] for r in answer["reasons"]}
    assert kinds == {old.name: "stale", never.name: "no_result"}
    stale = next(r for r in answer["reasons"] if r["kind"] == "stale")
    assert "30m old" in stale["message"] and "at most 10m" in stale["message"]

    finished(old, cluster)
    finished(never, cluster)
    assert ask(viewer, "prod-1")["verdict"] == "allow"


def test_a_failure_beats_staleness(viewer: APIClient) -> None:
    cluster = ClusterFactory(name="prod-1")
    old, bad = cases(2)
    policy([("", gating_set(old, bad))], max_result_age_seconds=60)
    finished(old, cluster, at=timezone.now() - timedelta(hours=3))
    finished(bad, cluster, RunState.TIMED_OUT)
    assert ask(viewer, "prod-1")["verdict"] == "deny"


def test_component_picks_its_case_sets(viewer: APIClient) -> None:
    cluster = ClusterFactory(name="prod-1")
    etcd_case, dns_case, base = cases(3)
    policy(
        [("etcd", gating_set(etcd_case)), ("coredns", gating_set(dns_case)), ("", gating_set(base))]
    )
    finished(etcd_case, cluster, RunState.FAILED)
    finished(dns_case, cluster)
    finished(base, cluster)

    assert ask(viewer, "prod-1", "coredns")["verdict"] == "allow"
    etcd = ask(viewer, "prod-1", "etcd")
    assert etcd["verdict"] == "deny"
    assert {c["case"] for c in etcd["cases"]} == {etcd_case.name, base.name}
    # No component: every case the policy names.
    assert len(ask(viewer, "prod-1")["cases"]) == 3


def test_policy_follows_the_clusters_group(viewer: APIClient) -> None:
    prod = ClusterFactory(name="prod-1", labels={"env": "prod"})
    dev = ClusterFactory(name="dev-1")
    strict, lenient = cases(2)
    group = ClusterGroupFactory(name="prod", selector={"env": "prod"})
    policy([("", gating_set(strict))], group=group, name="prod-gate")
    policy([("", gating_set(lenient))], name="everyone")
    finished(strict, prod, RunState.FAILED)
    finished(lenient, dev)

    assert ask(viewer, "prod-1")["policy"] == "prod-gate"
    assert ask(viewer, "prod-1")["verdict"] == "deny"
    assert ask(viewer, "dev-1")["policy"] == "everyone"
    assert ask(viewer, "dev-1")["verdict"] == "allow"


def test_default_policy_gates_the_clusters_bound_cases(viewer: APIClient) -> None:
    cluster = ClusterFactory(name="prod-1")
    bound, etcd_only, unbound = cases(3)
    binding = BindingFactory()
    binding.clusters.set([cluster])
    binding.cases.set([bound])
    on_etcd = BindingFactory(event_triggers=[{"kind": "component_release", "component": "etcd"}])
    on_etcd.clusters.set([cluster])
    on_etcd.cases.set([etcd_only])
    finished(bound, cluster)
    finished(etcd_only, cluster, RunState.FAILED)
    finished(unbound, cluster, RunState.FAILED)

    everything = ask(viewer, "prod-1")
    assert everything["policy"] == "default (built in)"
    assert {c["case"] for c in everything["cases"]} == {bound.name, etcd_only.name}
    assert everything["verdict"] == "deny"
    etcd = ask(viewer, "prod-1", "etcd")
    assert [c["case"] for c in etcd["cases"]] == [etcd_only.name]


def test_no_gating_case_is_unknown(viewer: APIClient) -> None:
    ClusterFactory(name="prod-1")
    answer = ask(viewer, "prod-1")
    assert answer["verdict"] == "unknown"
    assert [r["kind"] for r in answer["reasons"]] == ["no_cases"]


def test_an_open_alert_that_judged_the_latest_result_denies(viewer: APIClient) -> None:
    cluster = ClusterFactory(name="prod-1")
    [case] = cases(1)
    policy([("", gating_set(case))])
    finished(case, cluster, RunState.FAILED)
    passed = finished(case, cluster)
    alert = Alert.objects.create(
        case=case, cluster=cluster, state=AlertState.FIRING, reason="needs 3 successes"
    )
    # Not judged yet (the pipeline is behind): the passing result counts.
    assert ask(viewer, "prod-1")["verdict"] == "allow"
    Alert.objects.filter(pk=alert.pk).update(latest_run=passed)
    answer = ask(viewer, "prod-1")
    assert answer["verdict"] == "deny"
    assert answer["reasons"][0]["kind"] == "alert"
    assert "still firing (needs 3 successes)" in answer["reasons"][0]["message"]


def test_silenced_failures_deny_unless_the_policy_says_otherwise(viewer: APIClient) -> None:
    cluster = ClusterFactory(name="prod-1")
    [case] = cases(1)
    gate = policy([("", gating_set(case))])
    finished(case, cluster, RunState.FAILED)
    silence_create(
        matchers=[{"name": "cluster", "value": "prod-1"}],
        ends_at=timezone.now() + timedelta(hours=1),
        comment="CNI upgrade",
    )
    assert ask(viewer, "prod-1")["verdict"] == "deny"
    gate.silenced_denies = False
    gate.save()
    answer = ask(viewer, "prod-1")
    assert answer["verdict"] == "allow"
    assert answer["reasons"][0]["effect"] == "none"
    assert "silenced: CNI upgrade; not counted" in answer["reasons"][0]["message"]


def test_disabled_cluster_is_unknown(viewer: APIClient) -> None:
    cluster = ClusterFactory(name="prod-1", enabled=False)
    [case] = cases(1)
    policy([("", gating_set(case))])
    finished(case, cluster)
    answer = ask(viewer, "prod-1")
    assert answer["verdict"] == "unknown"
    assert answer["reasons"][0]["kind"] == "cluster_disabled"


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({}, "cluster", "This field is required."),
        ({"cluster": "nope"}, "cluster", "No cluster named 'nope'."),
        ({"cluster": "prod-1", "component": "Not A Word"}, "component", "Must be a lowercase word"),
        ({"cluster": "prod-1", "component": "etdc"}, "component", "names the component 'etdc'"),
    ],
)
def test_bad_queries_are_400_naming_the_field(
    viewer: APIClient, query: dict[str, str], field: str, message: str
) -> None:
    ClusterFactory(name="prod-1")
    policy([("etcd", gating_set(*cases(1)))])
    answer = viewer.get("/api/v1/gate", query)
    assert answer.status_code == 400
    assert message in answer.json()[field][0]
    assert not GateDecision.objects.exists()


def test_every_answer_is_recorded_with_who_asked(make_user: Callable[..., User]) -> None:
    cluster = ClusterFactory(name="prod-1")
    [case] = cases(1)
    policy([("", gating_set(case))])
    finished(case, cluster, RunState.FAILED)
    token = ApiToken(user=make_user("viewer", "release-bot"), name="release-platform")
    raw = token.issue()
    token.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    answer = ask(client, "prod-1")
    decision = GateDecision.objects.get(pk=answer["id"])
    assert decision.verdict == "deny" and decision.source == "api"
    assert decision.token == token and decision.user.username == "release-bot"
    assert decision.asked_by == "release-bot (token release-platform)"
    # Stored with each message's params (apps/core/said.py); answered as the asker reads it.
    assert render_items(decision.reasons) == answer["reasons"]
    assert all("message_params" not in r for r in answer["reasons"])
    assert decision.inputs["cases"][0]["case"] == case.name
    listed = client.get("/api/v1/gate/decisions", {"cluster": "prod-1", "verdict": "deny"})
    assert [d["id"] for d in listed.json()["results"]] == [decision.pk]


def test_anonymous_and_roleless_users_are_refused(make_user: Callable[..., User]) -> None:
    ClusterFactory(name="prod-1")
    assert APIClient().get("/api/v1/gate", {"cluster": "prod-1"}).status_code == 401
    nobody = APIClient()
    nobody.force_authenticate(User.objects.create_user("nobody"))
    assert nobody.get("/api/v1/gate", {"cluster": "prod-1"}).status_code == 403
