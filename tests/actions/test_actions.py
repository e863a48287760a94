"""Severity → action: policies matched on root cause and severity; a Job created on the
real control plane, a webhook sent to a local HTTP server; rate limit, dry run and
approval; every action and its outcome on the incident's timeline."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from apps.actions.models import ActionPolicy, ActionRun, ActionState
from apps.actions.services import action_approve, action_deliver, actions_plan
from apps.alerts.models import Alert, AlertState, Channel
from apps.alerts.transports.webhook import signature
from apps.clusters.models import Cluster
from apps.diagnosis.models import Incident, IncidentMember, IncidentScope
from tests.factories import CaseFactory, ClusterFactory
from tests.kube import LocalKube
from tests.runs.helpers import kube_cluster

pytestmark = pytest.mark.django_db

JOB = {
    "template": {
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "heal",
                    "image": "registry.example/heal:1",
                    "args": ["restart", "$(COMPONENT)"],
                    "env": [
                        {"name": "INCIDENT", "value": "$(INCIDENT)"},
                        {"name": "CAUSE", "value": "$(CATEGORY) on $(CLUSTER)"},
                    ],
                }
            ],
        }
    }
}


class Receiver:
    """A local HTTP server that records what it receives and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/heal"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def incident_on(cluster: Cluster, category: str = "etcd", severity: str = "critical") -> Alert:
    """An open cluster-wide incident on `cluster` with one firing alert in it."""
    case = CaseFactory()
    alert = Alert.objects.create(
        case=case, cluster=cluster, state=AlertState.FIRING, severity=severity
    )
    incident = Incident.objects.create(
        scope=IncidentScope.CLUSTER,
        key=f"cluster:{cluster.pk}:{case.pk}",
        title=f"3 cases fail on {cluster.name}",
        cluster=cluster,
        category=category,
        component="etcd-0",
    )
    IncidentMember.objects.create(incident=incident, alert=alert)
    return alert


def timeline(alert: Alert) -> list[str]:
    incident = Incident.objects.get(members__alert=alert)
    return list(incident.timeline.filter(kind="action").values_list("text", flat=True))


def policy(**fields: Any) -> ActionPolicy:
    defaults: dict[str, Any] = {"name": "etcd-heal", "category": "etcd", "severity": "warning"}
    made = ActionPolicy(**{**defaults, **fields})
    made.full_clean()
    made.save()
    return made


def test_a_job_is_created_from_the_template_on_the_real_cluster(
    kube: LocalKube, kube_ns: str
) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns, name="prod-1")
    alert = incident_on(cluster)
    policy(action="job", job_template=JOB, job_namespace=kube_ns)

    [action] = actions_plan(alert=alert)
    assert action.state == ActionState.QUEUED
    done = action_deliver(action_id=action.pk)
    assert done.state == ActionState.SUCCEEDED, done.outcome
    jobs = kube.api(
        "GET",
        f"/apis/batch/v1/namespaces/{kube_ns}/jobs?labelSelector=kubeprobe.io/action={action.pk}",
    )["items"]
    [job] = jobs
    assert done.outcome == f"created Job {kube_ns}/{job['metadata']['name']}"
    container = job["spec"]["template"]["spec"]["containers"][0]
    incident_id = str(done.incident_id)
    assert container["args"] == ["restart", "etcd-0"]
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "INCIDENT": incident_id,
        "CAUSE": "etcd on prod-1",
    }
    assert job["metadata"]["labels"]["kubeprobe.io/incident"] == incident_id
    assert job["spec"]["backoffLimit"] == 0
    assert timeline(alert) == [
        f"policy etcd-heal (critical on prod-1): Job in prod-1/{kube_ns} queued",
        f"policy etcd-heal: Job in prod-1/{kube_ns} succeeded: {done.outcome}",
    ]
    # Delivered twice (a redelivered task): the Job is not created twice.
    action_deliver(action_id=action.pk)
    assert len(kube.api("GET", f"/apis/batch/v1/namespaces/{kube_ns}/jobs")["items"]) == 1


def test_a_job_respects_the_circuit_breaker(kube: LocalKube, kube_ns: str) -> None:
    cluster = kube_cluster(kube, namespace=kube_ns, name="prod-1")
    Cluster.objects.filter(pk=cluster.pk).update(
        breaker_open_since=timezone.now(),
        breaker_failures=5,
        breaker_next_probe_at=timezone.now() + timedelta(minutes=5),
        breaker_last_error="connection refused",
    )
    alert = incident_on(Cluster.objects.get(pk=cluster.pk))
    policy(action="job", job_template=JOB, job_namespace=kube_ns)
    [action] = actions_plan(alert=alert)
    done = action_deliver(action_id=action.pk)
    assert done.state == ActionState.FAILED
    assert "unreachable" in done.outcome.lower()
    assert kube.api("GET", f"/apis/batch/v1/namespaces/{kube_ns}/jobs")["items"] == []
    assert "failed: " in timeline(alert)[-1]


def test_a_webhook_is_sent_signed_with_the_incidents_context(receiver: Receiver) -> None:
    cluster = ClusterFactory(name="prod-1")
    alert = incident_on(cluster)
    policy(action="webhook", webhook_url=receiver.url, webhook_secret="s3cret")
    [action] = actions_plan(alert=alert)
    done = action_deliver(action_id=action.pk)
    assert done.state == ActionState.SUCCEEDED, done.outcome
    [(headers, body)] = receiver.received
    assert headers["X-KubeProbe-Signature"] == signature("s3cret", body)
    sent = json.loads(body)
    assert sent["cluster"] == "prod-1" and sent["category"] == "etcd"
    assert sent["incident"] == done.incident_id and sent["severity"] == "critical"
    assert "answered HTTP 200" in done.outcome
    assert "s3cret" not in json.dumps(done.request)


def test_a_refusing_webhook_fails_and_says_why() -> None:
    server = Receiver(status=500)
    try:
        alert = incident_on(ClusterFactory(name="prod-1"))
        policy(action="webhook", webhook_url=server.url)
        [action] = actions_plan(alert=alert)
        done = action_deliver(action_id=action.pk)
    finally:
        server.stop()
    assert done.state == ActionState.FAILED and "500" in done.outcome
    assert "webhook POST" in timeline(alert)[-1] and "failed" in timeline(alert)[-1]


def test_policies_match_root_cause_and_severity(receiver: Receiver) -> None:
    cluster = ClusterFactory(name="prod-1")
    policy(name="dns", category="dns", action="webhook", webhook_url=receiver.url)
    policy(name="critical-only", category="", severity="critical")
    warning = incident_on(cluster, severity="warning")
    assert actions_plan(alert=warning) == []
    critical = incident_on(ClusterFactory(), severity="critical")
    assert [a.policy.name for a in actions_plan(alert=critical)] == ["critical-only"]
    # Once per (policy, incident, cluster): the next run of the pair plans nothing.
    assert actions_plan(alert=critical) == []


def test_rate_limit_per_cluster(receiver: Receiver) -> None:
    cluster = ClusterFactory(name="prod-1")
    policy(action="webhook", webhook_url=receiver.url, rate_limit_count=1, rate_limit_minutes=30)
    [first] = actions_plan(alert=incident_on(cluster))
    assert first.state == ActionState.QUEUED
    second_alert = incident_on(cluster)
    [second] = actions_plan(alert=second_alert)
    assert second.state == ActionState.RATE_LIMITED
    assert action_deliver(action_id=second.pk).state == ActionState.RATE_LIMITED
    assert receiver.received == []
    assert "rate limit of 1 per 30 min on this cluster reached" in timeline(second_alert)[0]
    # Another cluster has its own budget.
    [other] = actions_plan(alert=incident_on(ClusterFactory()))
    assert other.state == ActionState.QUEUED


def test_dry_run_records_what_it_would_do(receiver: Receiver) -> None:
    alert = incident_on(ClusterFactory(name="prod-1"))
    policy(action="webhook", webhook_url=receiver.url, dry_run=True)
    [action] = actions_plan(alert=alert)
    assert action_deliver(action_id=action.pk).state == ActionState.DRY_RUN
    assert receiver.received == []
    assert action.request["webhook"]["body"]["cluster"] == "prod-1"
    assert timeline(alert) == [
        f"policy etcd-heal (critical on prod-1): dry run, would run webhook POST {receiver.url}"
    ]


def test_disruptive_actions_wait_for_an_admins_approval(receiver: Receiver) -> None:
    alert = incident_on(ClusterFactory(name="prod-1"))
    policy(action="webhook", webhook_url=receiver.url, disruptive=True)
    [action] = actions_plan(alert=alert)
    assert action_deliver(action_id=action.pk).state == ActionState.AWAITING_APPROVAL
    assert receiver.received == []

    admin = Client()
    admin.force_login(User.objects.create_superuser("boss"))
    answer = admin.post(
        "/admin/actions/actionrun/",
        {"action": "approve", "_selected_action": [action.pk]},
        follow=True,
    )
    assert "Approved 1 action." in answer.content.decode()
    assert ActionRun.objects.get(pk=action.pk).state == ActionState.QUEUED
    assert not action_approve(action_id=action.pk, user=None)  # only once
    done = action_deliver(action_id=action.pk)  # what the queued task does
    assert done.state == ActionState.SUCCEEDED and len(receiver.received) == 1
    assert done.approved_by.username == "boss"
    assert "boss approved webhook POST" in timeline(alert)[1]


def test_escalation_pages_at_critical_and_notify_at_the_alerts_severity(
    receiver: Receiver,
) -> None:
    alert = incident_on(ClusterFactory(name="prod-1"), severity="warning")
    pager = Channel.objects.create(
        name="pager",
        kind="pagerduty",
        config_json=json.dumps({"routing_key": "r" * 32, "events_url": receiver.url}),
    )
    chat = Channel.objects.create(
        name="chat", kind="webhook", config_json=json.dumps({"url": receiver.url})
    )
    made = policy()
    made.escalate_channels.set([pager])
    made.notify_channels.set([chat])
    [action] = actions_plan(alert=alert)
    action_deliver(action_id=action.pk)
    bodies = [json.loads(body) for _, body in receiver.received]
    paged = next(b for b in bodies if "routing_key" in b)
    assert paged["payload"]["severity"] == "critical"
    told = next(b for b in bodies if "routing_key" not in b)
    assert told["severity"] == "warning"
    assert timeline(alert)[1:] == [
        "policy etcd-heal: notified chat at warning",
        "policy etcd-heal: paged (high urgency) pager at critical",
    ]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"action": "webhook"}, "webhook_url", "A webhook action needs a URL."),
        ({"action": "webhook", "webhook_url": "ftp://x"}, "webhook_url", "http:// or https://"),
        ({"action": "job", "job_template": {"template": {}}}, "job_template", "containers"),
        ({"rate_limit_count": 0}, "rate_limit_count", "greater than or equal to 1"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(
    fields: dict[str, Any], field: str, message: str
) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        policy(**fields)
    assert message in " ".join(refused.value.message_dict[field])
