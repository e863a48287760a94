"""From flips to messages at a real webhook receiver: grouping, routing, silences,
retries, disabling, and exactly-once delivery with racing workers."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from apps.alerts import channels, delivery, sending, services, silences
from apps.alerts.models import (
    Alert,
    AlertFlip,
    AlertRule,
    Channel,
    Notification,
    NotificationStatus,
)
from tests.alerts.conftest import add_run
from tests.alerts.transports.helpers import Receiver
from tests.factories import CaseFactory, ClusterFactory
from tests.utils import wait_for

pytestmark = pytest.mark.django_db


def fail(
    case: Any, cluster: Any, times: int = 1, error: str = "Failed to create pod sandbox"
) -> Alert:
    for _ in range(times):
        add_run(case, cluster, False, error=error)
        alert = services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    assert alert is not None
    return alert


def deliver(seconds_later: float = 5) -> list[int]:
    """Deliver as a worker would, once the group wait has passed."""
    return delivery.flips_deliver(now=timezone.now() + timedelta(seconds=seconds_later), send=False)


def send_all(ids: list[int]) -> list[str | None]:
    return [sending.notification_send(i) for i in ids]


@pytest.fixture
def rule(db: None) -> AlertRule:
    rule = AlertRule.objects.get(name="default")
    rule.consecutive_failures = 1
    rule.save()
    return rule


def test_a_firing_alert_reaches_the_webhook_with_step_error_diagnosis_and_links(
    rule: AlertRule, webhook: Channel, receiver: Receiver
) -> None:
    case, cluster = CaseFactory(name="statefulset-lifecycle"), ClusterFactory(name="prod-1")
    alert = fail(case, cluster, error="Failed to create pod sandbox: rpc error: code = Unknown")
    assert deliver(seconds_later=0) == []  # still inside the group wait
    [notification_id] = deliver()
    assert send_all([notification_id]) == ["sent"]
    body = receiver.last.json()
    assert body["event"] == "firing" and body["severity"] == "warning"
    assert body["case"] == "statefulset-lifecycle"
    assert body["title"] == (
        "[warning] statefulset-lifecycle failing on prod-1: ready: "
        "Failed to create pod sandbox: rpc error: code = Unknown"
    )
    [item] = body["items"]
    assert item["cluster"] == "prod-1" and item["step"] == "ready"
    assert item["error"] == "Failed to create pod sandbox: rpc error: code = Unknown"
    assert item["run_url"].endswith(f"/admin/runs/proberun/{alert.last_run_id}/change/")
    assert item["log_url"] == item["run_url"] + "#log"
    assert "container runtime" in body["hint"].lower()  # the diagnosis
    assert "Diagnosis: Container runtime / sandbox" in body["text"]
    notification = Notification.objects.get(pk=notification_id)
    assert notification.status == "sent" and notification.duration_ms is not None
    assert any(t.text.startswith("notified via ops-hook") for t in alert.timeline.all())
    assert deliver() == []  # claimed once


def test_many_clusters_failing_one_case_become_one_message(
    rule: AlertRule, webhook: Channel, receiver: Receiver
) -> None:
    case = CaseFactory(name="pod-lifecycle")
    for name in ("prod-3", "prod-1", "prod-2"):
        fail(case, ClusterFactory(name=name))
    fail(
        CaseFactory(name="etcd-blackbox"),
        ClusterFactory(name="prod-9"),
        error="etcdserver: request timed out",
    )
    send_all(deliver())
    assert len(receiver.requests) == 2
    grouped = next(r.json() for r in receiver.requests if r.json()["case"] == "pod-lifecycle")
    assert [i["cluster"] for i in grouped["items"]] == ["prod-1", "prod-2", "prod-3"]
    assert (
        grouped["title"] == "[warning] pod-lifecycle failing on 3 clusters (prod-1, prod-2, prod-3)"
    )


def test_channels_route_by_severity_matchers_and_resolved(
    rule: AlertRule, receiver: Receiver
) -> None:
    everything = channels.channel_save(
        name="all", kind="webhook", config={"url": receiver.url("/all")}
    )
    critical = channels.channel_save(
        name="pager",
        kind="webhook",
        config={"url": receiver.url("/pager")},
        severities=["critical"],
    )
    prod2 = channels.channel_save(
        name="prod-2-team",
        kind="webhook",
        config={"url": receiver.url("/prod-2")},
        matchers=[{"name": "cluster", "value": "prod-2"}],
        send_resolved=False,
    )
    case = CaseFactory()
    one, two = ClusterFactory(name="prod-1"), ClusterFactory(name="prod-2")
    fail(case, one)
    fail(case, two)
    send_all(deliver())
    paths = sorted(r.path for r in receiver.requests)
    assert paths == ["/all", "/prod-2"]
    assert [
        i["cluster"]
        for i in next(r for r in receiver.requests if r.path == "/prod-2").json()["items"]
    ] == ["prod-2"]
    assert critical.notifications.count() == 0
    add_run(case, two, True)
    services.alert_evaluate(case_id=case.pk, cluster_id=two.pk)
    send_all(deliver())
    assert [r.path for r in receiver.requests[2:]] == ["/all"]  # prod-2-team skips resolved
    assert receiver.requests[2].json()["event"] == "resolved"
    assert everything.notifications.count() == 2 and prod2.notifications.count() == 1


def test_quiet_flips_are_recorded_not_sent(
    rule: AlertRule, webhook: Channel, receiver: Receiver
) -> None:
    case, cluster = CaseFactory(), ClusterFactory(name="prod-1")
    silences.silence_create(
        matchers=[{"name": "cluster", "value": "prod-1"}],
        ends_at=timezone.now() + timedelta(hours=1),
    )
    fail(case, cluster)
    assert deliver() == []
    assert receiver.requests == []
    assert AlertFlip.objects.get().processed_at is not None


def test_silence_created_after_the_flip_still_stops_the_message(
    rule: AlertRule, webhook: Channel, receiver: Receiver
) -> None:
    alert = fail(CaseFactory(), ClusterFactory(name="prod-1"))
    silences.silence_create(
        matchers=[{"name": "cluster", "value": "prod-1"}],
        ends_at=timezone.now() + timedelta(hours=1),
    )
    assert deliver() == []
    assert any("not notified: silenced until" in t.text for t in alert.timeline.all())


def test_the_dependency_message_names_the_dependents_kept_quiet(
    webhook: Channel, receiver: Receiver
) -> None:
    cluster = ClusterFactory(name="prod-1")
    etcd, pods = CaseFactory(name="etcd-blackbox"), CaseFactory(name="pod-lifecycle")
    AlertRule.objects.create(name="etcd", case=etcd, consecutive_failures=1)
    AlertRule.objects.create(name="pods", case=pods, consecutive_failures=1).depends_on.add(etcd)
    fail(etcd, cluster, error="etcdserver: request timed out")
    fail(pods, cluster)
    send_all(deliver())
    [request] = receiver.requests
    body = request.json()
    assert body["case"] == "etcd-blackbox"
    assert (
        "also failing, not notified because they depend on this: pod-lifecycle on prod-1"
        in body["note"]
    )


def test_transient_errors_retry_with_backoff_until_sent(
    rule: AlertRule, webhook: Channel, receiver: Receiver
) -> None:
    fail(CaseFactory(), ClusterFactory())
    receiver.respond(503, "busy")
    [notification_id] = deliver()
    assert send_all([notification_id]) == ["retrying"]
    notification = Notification.objects.get(pk=notification_id)
    assert notification.attempts == 1 and "503" in notification.error
    assert notification.next_attempt_at is not None
    receiver.respond(200)
    assert sending.notifications_retry_due() == 0  # not due yet
    with time_machine.travel(notification.next_attempt_at, tick=False):
        assert sending.notifications_retry_due() == 1
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 2)
    assert len(receiver.requests) == 2


def test_gives_up_after_the_last_attempt(
    rule: AlertRule, webhook: Channel, receiver: Receiver, settings: Any
) -> None:
    settings.KUBEPROBE_NOTIFY_MAX_ATTEMPTS = 2
    fail(CaseFactory(), ClusterFactory())
    receiver.respond(500)
    [notification_id] = deliver()
    assert send_all([notification_id]) == ["retrying"]
    notification = Notification.objects.get(pk=notification_id)
    with time_machine.travel(notification.next_attempt_at, tick=False):
        sending.notifications_retry_due()
    notification.refresh_from_db()
    assert notification.status == "failed" and notification.attempts == 2
    webhook.refresh_from_db()
    assert webhook.enabled  # transient: the channel stays on


def test_a_permanent_refusal_disables_the_channel_with_the_reason(
    rule: AlertRule, webhook: Channel, receiver: Receiver
) -> None:
    fail(CaseFactory(), ClusterFactory())
    receiver.respond(404, "no such hook")
    [notification_id] = deliver()
    assert send_all([notification_id]) == ["failed"]
    webhook.refresh_from_db()
    assert not webhook.enabled
    assert "404" in webhook.disabled_reason
    fail(CaseFactory(), ClusterFactory())
    assert deliver() == []  # a disabled channel gets nothing


def test_send_test_uses_the_real_path(webhook: Channel, receiver: Receiver) -> None:
    notification = sending.channel_send_test(channel_id=webhook.pk)
    assert notification.status == "sent"
    assert receiver.last.json()["event"] == "test"
    receiver.respond(401, "bad token")
    notification = sending.channel_send_test(channel_id=webhook.pk)
    assert notification.status == "failed" and "401" in notification.error
    webhook.refresh_from_db()
    assert not webhook.enabled and "401" in webhook.disabled_reason


def test_channel_config_is_validated_encrypted_and_secrets_kept(receiver: Receiver) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="url"):
        channels.channel_save(name="bad", kind="webhook", config={"url": "ftp://x"})
    with pytest.raises(ValidationError, match="Unknown channel kind 'pigeon'"):
        channels.channel_save(name="bad", kind="pigeon", config={})
    channel = channels.channel_save(
        name="signed", kind="webhook", config={"url": receiver.url(), "secret": "s3cret"}
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT config_json FROM alerts_channel WHERE id = %s", [channel.pk])
        stored = cursor.fetchone()[0]
    assert "s3cret" not in stored and receiver.url() not in stored
    channel = channels.channel_save(
        name="signed",
        kind="webhook",
        config={"url": receiver.url("/new"), "secret": "••••"},
        channel=channel,
    )
    import json

    assert json.loads(channel.config_json)["secret"] == "s3cret"  # masked value kept the secret


# ------------------------------------------------------------------ racing workers


@pytest.mark.django_db(transaction=True)
def test_racing_workers_deliver_every_notification_exactly_once(receiver: Receiver) -> None:
    rule = AlertRule.objects.get(name="default")
    rule.consecutive_failures = 1
    rule.save()
    channels.channel_save(name="hook", kind="webhook", config={"url": receiver.url()})
    clusters = [ClusterFactory(name=f"c-{i:02d}") for i in range(12)]
    cases = [CaseFactory(name=f"case-{i}") for i in range(5)]
    for case in cases:
        for cluster in clusters:
            fail(case, cluster)
    later = timezone.now() + timedelta(seconds=5)
    barrier = threading.Barrier(4)
    created: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(5)
            ids = delivery.flips_deliver(now=later, send=False)
            created.extend(ids)
            barrier.wait(5)
            for notification_id in sorted(set(created)):  # every worker tries every one
                sending.notification_send(notification_id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert AlertFlip.objects.filter(processed_at=None).count() == 0
    assert Notification.objects.count() == len(created) == len(set(created))
    wait_for(lambda: len(receiver.requests) >= len(created), timeout=10)
    seen = [(r.json()["case"], i["cluster"]) for r in receiver.requests for i in r.json()["items"]]
    assert sorted(seen) == sorted((c.name, k.name) for c in cases for k in clusters)
    assert len(seen) == len(set(seen))  # nobody twice
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.SENT}


def test_still_firing_alerts_are_sent_again_to_alertmanager(
    rule: AlertRule, receiver: Receiver
) -> None:
    channels.channel_save(
        name="am",
        kind="alertmanager",
        config={"url": receiver.url(""), "resend_interval_seconds": 60},
    )
    case = CaseFactory(name="pod-lifecycle")
    fail(case, ClusterFactory(name="prod-1"))
    resolved_later = ClusterFactory(name="prod-2")
    fail(case, resolved_later)
    send_all(deliver())
    assert [r.path for r in receiver.requests] == ["/api/v2/alerts"]
    start = Notification.objects.get().created_at
    add_run(case, resolved_later, True)
    services.alert_evaluate(case_id=case.pk, cluster_id=resolved_later.pk)
    send_all(deliver())  # the resolve
    sent = len(receiver.requests)
    with time_machine.travel(start + timedelta(seconds=59), tick=False):
        assert sending.notifications_resend() == []
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        assert len(sending.notifications_resend()) == 1
        assert sending.notifications_resend() == []  # just sent
    again = receiver.requests[sent:]
    assert len(again) == 1
    clusters = {a["labels"]["cluster"] for a in again[0].json()}
    assert clusters == {"prod-1"}  # the resolved one is not repeated
    assert Notification.objects.filter(title__startswith="(still firing)").count() == 1


def test_a_channel_down_for_the_whole_incident_hears_the_failure_before_the_recovery(
    rule: AlertRule, webhook: Channel, receiver: Receiver
) -> None:
    case, cluster = CaseFactory(), ClusterFactory(name="prod-1")
    fail(case, cluster)
    receiver.respond(503)
    [firing] = deliver()
    assert send_all([firing]) == ["retrying"]
    add_run(case, cluster, True)
    services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    [resolved] = deliver(seconds_later=10)
    # Still down, and the recovery waits behind the failure it ends: nothing new is tried.
    assert send_all([resolved]) == ["pending"]
    assert len(receiver.requests) == 1
    first_retry = Notification.objects.get(pk=firing).next_attempt_at
    assert Notification.objects.get(pk=resolved).next_attempt_at > first_retry
    receiver.respond(200)  # the channel comes back
    later = Notification.objects.get(pk=resolved).next_attempt_at
    with time_machine.travel(later, tick=False):
        sending.notifications_retry_due()
    assert [r.json()["event"] for r in receiver.requests[1:]] == ["firing", "resolved"]
    assert Notification.objects.get(pk=resolved).attempts == 1  # waiting cost no attempt


def test_a_recovery_whose_failure_notice_was_lost_says_both(
    rule: AlertRule, webhook: Channel, receiver: Receiver, settings: Any
) -> None:
    settings.KUBEPROBE_NOTIFY_MAX_ATTEMPTS = 1
    case, cluster = CaseFactory(), ClusterFactory(name="prod-1")
    fail(case, cluster)
    receiver.respond(503)
    [firing] = deliver()
    assert send_all([firing]) == ["failed"]
    receiver.respond(200)
    add_run(case, cluster, True)
    services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    [resolved] = deliver(seconds_later=10)
    assert send_all([resolved]) == ["sent"]
    body = receiver.last.json()
    assert body["event"] == "resolved"
    fired_at = AlertFlip.objects.get(notifications=firing).created_at
    assert f"fired {fired_at:%Y-%m-%d %H:%M:%S} UTC, recovered" in body["text"]


def test_episodes_delivered_late_stay_separate_and_list_each_cluster_once(
    rule: AlertRule, webhook: Channel, receiver: Receiver
) -> None:
    case, cluster = CaseFactory(name="pod-lifecycle"), ClusterFactory(name="fi-local")
    other = ClusterFactory(name="fi-other")
    for ok in (False, True, False, True):
        add_run(case, cluster, ok, error="boom")
        services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    fail(case, other)
    send_all(deliver(seconds_later=30))  # delivery fell behind: everything claimed at once
    sent = [
        (r.json()["event"], [i["cluster"] for i in r.json()["items"]]) for r in receiver.requests
    ]
    assert sent == [
        ("firing", ["fi-local", "fi-other"]),
        ("resolved", ["fi-local"]),
        ("firing", ["fi-local"]),
        ("resolved", ["fi-local"]),
    ]
