"""The diagnosis step of the post-run pipeline: root cause on run and alert, incidents
across clusters and on one cluster, one notification per incident, recovery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from apps.alerts import delivery
from apps.alerts.models import AlertRule, Channel, Notification
from apps.diagnosis.models import Incident, IncidentMember, RunDiagnosis
from tests.alerts.transports.helpers import Receiver
from tests.diagnosis.helpers import case_of, failed_step, finish
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db

PULL = 'not reached after 120 s; last seen: phase Pending; ImagePullBackOff Back-off pulling image "reg.example.com/p:1"'


@pytest.fixture
def one_failure_fires(db: None) -> AlertRule:
    rule = AlertRule.objects.get(name="default")
    rule.consecutive_failures = 1
    rule.save()
    return rule


def test_a_failed_run_gets_its_root_cause_with_evidence_and_the_alert_carries_it(
    one_failure_fires: AlertRule,
) -> None:
    case, cluster = case_of("etcd", "etcd-meta"), ClusterFactory(name="prod-1")
    body = failed_step(
        "put https://10.0.0.5:2379", "<urlopen error [Errno 111] Connection refused>"
    )
    run, alert = finish(case, cluster, body)
    assert (run.root_cause, run.root_cause_source) == ("etcd", "rule")
    assert run.root_cause_confidence == pytest.approx(0.9)
    diagnosis = RunDiagnosis.objects.get(run=run)
    assert diagnosis.rule is not None and diagnosis.rule.name == "etcd-case-unreachable"
    assert diagnosis.evidence["step"] == "put https://10.0.0.5:2379"
    assert diagnosis.evidence["case_kind"] == "etcd"
    assert alert is not None and alert.state == "firing"
    assert (alert.root_cause, alert.root_cause_component) == ("etcd", "etcd")
    assert "etcd does not answer" in alert.root_cause_summary
    # A success is not diagnosed; the alert resolves.
    run, alert = finish(case, cluster, {"ok": True, "steps": []})
    assert run.root_cause == "" and not RunDiagnosis.objects.filter(run=run).exists()


def test_reaped_run_is_diagnosed_from_pod_reasons_and_node(one_failure_fires: AlertRule) -> None:
    case, cluster = case_of("lifecycle", "pod-lifecycle"), ClusterFactory()
    run, _ = finish(
        case,
        cluster,
        state="error",
        reason="pod failed: ...",
        diagnostics={
            "phase": "Pending",
            "node": "kwok-node-1",
            "containers": [{"reason": "ContainerCreating", "message": ""}],
            "events": [
                {
                    "type": "Warning",
                    "reason": "FailedCreatePodSandBox",
                    "message": 'plugin type="calico" failed (add): failed to set up network',
                }
            ],
        },
    )
    assert run.root_cause == "network"
    assert run.root_cause_component == "CNI plugin on kwok-node-1"


def test_the_same_failure_on_many_clusters_is_one_incident_notified_once(
    one_failure_fires: AlertRule, webhook: Channel, receiver: Receiver
) -> None:
    case = case_of("lifecycle", "pod-lifecycle")
    clusters = [ClusterFactory(name=f"prod-{i}") for i in range(4)]
    finish(case, clusters[0], failed_step("running", PULL))
    finish(case, clusters[1], failed_step("running", PULL))
    assert not Incident.objects.exists()  # two clusters: below the threshold (3)
    finish(case, clusters[2], failed_step("running", PULL.replace("120 s", "60 s")))
    [incident] = Incident.objects.all()
    assert (incident.scope, incident.state, incident.category) == ("case", "open", "image")
    assert incident.case == case
    assert IncidentMember.objects.filter(incident=incident).count() == 3
    _, alert = finish(case, clusters[3], failed_step("running", PULL))
    assert alert is not None and alert.incident_ref == incident.ref
    assert IncidentMember.objects.filter(incident=incident).count() == 4
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds[0] == "opened" and kinds.count("joined") == 4

    # A different failure of the same case is not this incident.
    other = ClusterFactory(name="prod-x")
    finish(case, other, failed_step("create", "HTTP 401: Unauthorized"))
    assert IncidentMember.objects.filter(incident=incident).count() == 4

    # Recovery: members leave; the last one resolves the incident.
    for cluster in clusters:
        finish(case, cluster, {"ok": True, "steps": []})
    incident.refresh_from_db()
    assert incident.state == "resolved" and incident.resolved_at is not None
    assert list(incident.timeline.values_list("kind", flat=True))[-1] == "resolved"


def test_many_cases_failing_on_one_cluster_are_a_cluster_incident_at_the_deepest_cause(
    one_failure_fires: AlertRule, webhook: Channel, receiver: Receiver
) -> None:
    cluster = ClusterFactory(name="prod-7")
    etcd = case_of("etcd", "etcd-meta")
    pods = case_of("lifecycle", "pod-lifecycle")
    canary = case_of("canary", "canary-nginx")
    finish(etcd, cluster, failed_step("put https://10.0.0.5:2379", "timed out"))
    finish(pods, cluster, failed_step("create", "HTTP 500: etcdserver: request timed out"))
    assert not Incident.objects.exists()
    finish(canary, cluster, failed_step("deploy", "HTTP 503: the server is currently unable"))
    [incident] = Incident.objects.all()
    assert (incident.scope, incident.cluster, incident.category) == ("cluster", cluster, "etcd")
    assert "3 cases failing on prod-7" in incident.title
    # The three firings (three cases) go out as one message for the incident.
    [notification_id] = delivery.flips_deliver(
        now=timezone.now() + timedelta(seconds=5), send=False
    )
    notification = Notification.objects.get(pk=notification_id)
    assert notification.flips.count() == 3
    assert "3 cases failing on prod-7" in notification.title


@override_settings(KUBEPROBE_INCIDENT_WINDOW_SECONDS=60)
def test_failures_outside_the_window_do_not_group(one_failure_fires: AlertRule) -> None:
    case = case_of("lifecycle", "pod-lifecycle")
    for _ in range(2):
        run, _ = finish(case, ClusterFactory(), failed_step("running", PULL))
        RunDiagnosis.objects.filter(run=run).update(
            created_at=timezone.now() - timedelta(minutes=5)
        )
    finish(case, ClusterFactory(), failed_step("running", PULL))
    assert not Incident.objects.exists()
