"""/metrics: state read from the database and Redis at scrape time, report
ingestion counted by the process, token protection, a failing collector isolated."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.alerts.models import Alert, AlertState, Channel, Notification, NotificationStatus
from apps.core import metrics
from apps.core.crypto import hash_token
from apps.resident.storage import Window, batch_store
from apps.runs.models import ProbeRun, RunState
from kubeprobe_site.celery import app as celery_app
from tests.factories import CaseFactory, ClusterFactory, ProbeRunFactory
from tests.resident.helpers import make_probe
from tests.runs.helpers import make_case, make_run

pytestmark = pytest.mark.django_db


def scrape(client: Client, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_pairs_results_alert_states_and_breakers_come_from_the_database(client: Client) -> None:
    east, west = ClusterFactory(name="east"), ClusterFactory(name="west")
    etcd, dns = CaseFactory(name="etcd"), CaseFactory(name="dns")
    Alert.objects.create(
        case=etcd, cluster=east, latest_state=RunState.SUCCEEDED, latest_duration_ms=1500
    )
    Alert.objects.create(
        case=dns,
        cluster=east,
        state=AlertState.FIRING,
        severity="critical",
        latest_state=RunState.TIMED_OUT,
        latest_duration_ms=30000,
    )
    Alert.objects.create(case=etcd, cluster=west, state=AlertState.SILENCED)  # no run yet
    west.breaker_open_since, west.breaker_failures = timezone.now(), 4
    west.save()

    samples = scrape(client)

    assert value(samples, "kubeprobe_probe_success", case="etcd", cluster="east") == 1
    assert value(samples, "kubeprobe_probe_success", case="dns", cluster="east") == 0
    assert value(samples, "kubeprobe_probe_duration_seconds", case="dns", cluster="east") == 30
    assert value(samples, "kubeprobe_probe_duration_seconds", case="etcd", cluster="east") == 1.5
    assert value(samples, "kubeprobe_alert_state", case="dns", cluster="east") == 1
    assert value(samples, "kubeprobe_alert_state", case="etcd", cluster="west") == 3
    # A pair that never finished a run has an alert state but no result.
    assert value(samples, "kubeprobe_probe_success", case="etcd", cluster="west") is None
    assert value(samples, "kubeprobe_alerts", state="firing", severity="critical") == 1
    assert value(samples, "kubeprobe_pairs_by_result", result="timed_out") == 1
    assert value(samples, "kubeprobe_cluster_breaker_open", cluster="west") == 1
    assert value(samples, "kubeprobe_cluster_breaker_open", cluster="east") == 0
    assert value(samples, "kubeprobe_cluster_breaker_failures", cluster="west") == 4
    assert value(samples, "kubeprobe_metrics_collector_failed", collector="pairs") == 0


def test_per_pair_series_can_be_switched_off(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    Alert.objects.create(
        case=CaseFactory(name="etcd"), cluster=ClusterFactory(name="east"), latest_state="failed"
    )
    settings.KUBEPROBE_METRICS_PER_PAIR = False
    samples = scrape(client)
    assert not [key for key in samples if key[0] == "kubeprobe_probe_success"]
    assert value(samples, "kubeprobe_pairs_by_result", result="failed") == 1


def test_runs_by_state_and_trigger_and_recent_notifications(client: Client) -> None:
    ProbeRunFactory.create_batch(2, state=RunState.PENDING, trigger="schedule")
    ProbeRunFactory(state=RunState.RUNNING, trigger="manual")
    ProbeRunFactory(state=RunState.FAILED, trigger="schedule", finished_at=timezone.now())
    # Outside the window: not counted.
    ProbeRunFactory(
        state=RunState.FAILED,
        trigger="schedule",
        finished_at=timezone.now() - timedelta(hours=1),
    )
    channel = Channel.objects.create(name="ops", kind="webhook")
    for status in (NotificationStatus.SENT, NotificationStatus.SENT, NotificationStatus.FAILED):
        Notification.objects.create(
            channel=channel, event="firing", severity="warning", status=status
        )

    samples = scrape(client)

    assert value(samples, "kubeprobe_runs_active", state="pending", trigger="schedule") == 2
    assert value(samples, "kubeprobe_runs_active", state="running", trigger="manual") == 1
    assert value(samples, "kubeprobe_runs_finished_recent", state="failed", trigger="schedule") == 1
    assert value(samples, "kubeprobe_notifications_recent", kind="webhook", status="sent") == 2
    assert value(samples, "kubeprobe_notifications_recent", kind="webhook", status="failed") == 1


def test_reports_are_counted_and_timed_by_protocol_and_status(client: Client) -> None:
    case, cluster = make_case(), ClusterFactory()
    run = make_run(case, cluster)
    ProbeRun.objects.filter(pk=run.pk).update(
        token_hash=hash_token("metrics-token-" + "x" * 20),
        state=RunState.RUNNING,
        deadline=timezone.now() + timedelta(minutes=5),
    )
    before = scrape(client)
    stored = ("kubeprobe_reports_total", (("code", "200"), ("protocol", "kubeprobe")))
    refused = ("kubeprobe_reports_total", (("code", "401"), ("protocol", "kubeprobe")))
    count = ("kubeprobe_report_duration_seconds_count", (("protocol", "kubeprobe"),))
    body = json.dumps({"ok": True, "errors": [], "steps": [], "metrics": {}})
    path = f"/api/v1/runs/{run.pk}/report"
    assert (
        client.post(
            path, body, content_type="application/json", HTTP_AUTHORIZATION="Bearer wrong"
        ).status_code
        == 401
    )
    ok = client.post(
        path,
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer metrics-token-" + "x" * 20,
    )
    assert ok.status_code == 200, ok.content

    after = scrape(client)

    assert after[stored] - before.get(stored, 0) == 1
    assert after[refused] - before.get(refused, 0) == 1
    assert after[count] - before.get(count, 0) == 2


def test_queue_depth_and_lag_of_the_celery_queues(client: Client) -> None:
    celery_app.control.purge()
    dispatch = f"{celery_app.conf.task_default_queue}.dispatch"
    sent_at = timezone.now().timestamp()
    for run_id in (1, 2, 3):  # no worker consumes this process's queues
        celery_app.send_task("apps.runs.tasks.dispatch_run", args=[run_id])
    try:
        samples = scrape(client)
    finally:
        celery_app.control.purge()
    assert value(samples, "kubeprobe_queue_messages", queue=dispatch) == 3
    lag = value(samples, "kubeprobe_queue_lag_seconds", queue=dispatch)
    assert lag is not None and 0 < lag < timezone.now().timestamp() - sent_at + 1
    empty = f"{celery_app.conf.task_default_queue}.alerts"
    assert value(samples, "kubeprobe_queue_messages", queue=empty) == 0
    assert value(samples, "kubeprobe_queue_lag_seconds", queue=empty) == 0


def test_the_token_guards_metrics_when_set(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_METRICS_TOKEN = "scrape-" + "s" * 30
    refused = client.get("/metrics")
    assert refused.status_code == 401 and "KUBEPROBE_METRICS_TOKEN" in refused.content.decode()
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    samples = scrape(client, HTTP_AUTHORIZATION="Bearer scrape-" + "s" * 30)
    assert value(samples, "kubeprobe_metrics_collector_failed", collector="runs") == 0


def test_a_failing_collector_is_left_out_and_named(client: Client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    class Broken:
        def collect(self) -> Any:
            raise RuntimeError("query failed")
            yield  # a generator, as the real ones

    monkeypatch.setitem(metrics._collectors, "broken", Broken())
    ClusterFactory(name="east")
    samples = scrape(client)
    assert value(samples, "kubeprobe_metrics_collector_failed", collector="broken") == 1
    assert value(samples, "kubeprobe_cluster_breaker_open", cluster="east") == 0


def test_gzip_when_asked_and_the_text_parses_the_same(client: Client) -> None:
    Alert.objects.create(
        case=CaseFactory(name="etcd"), cluster=ClusterFactory(name="east"), latest_state="failed"
    )
    zipped = client.get("/metrics", HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert zipped["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped["Vary"]
    text = gzip.decompress(zipped.content).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    (sample,) = families["kubeprobe_probe_success"].samples
    assert sample.labels == {"case": "etcd", "cluster": "east"} and sample.value == 0


def test_label_values_are_escaped() -> None:
    text = f'm{{a="{metrics.label_value(chr(92) + chr(34) + chr(10))}"}} 1\n'
    (family,) = text_string_to_metric_families(text)
    assert family.samples[0].labels == {"a": '\\"\n'}


def test_resident_availability_and_sample_rate_per_probe_and_cluster(
    client: Client, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_METRICS_WINDOW_SECONDS = 60
    east = ClusterFactory(name="east")
    probe, _ = make_probe("etcd-resident", clusters=[east])
    now = timezone.now()
    # 30 samples in the window, 3 failed; the newest window down.
    batch = [
        Window(
            start=now - timedelta(seconds=30 - 10 * i),
            end=now - timedelta(seconds=20 - 10 * i),
            count=10,
            failures=3 if i == 2 else 0,
            p50_ms=3.0,
            p99_ms=9.0,
            max_ms=12.0,
            up=i != 2,
            errors=[],
        )
        for i in range(3)
    ]
    assert batch_store(
        probe_id=probe.pk,
        cluster_id=east.pk,
        batch_id=str(uuid.uuid4()),
        windows=batch,
        dropped=4,
        now=now,
    )
    samples = scrape(client)
    pair = {"probe": "etcd-resident", "cluster": "east"}
    assert value(samples, "kubeprobe_resident_availability", **pair) == 0.9
    assert value(samples, "kubeprobe_resident_samples_per_second", **pair) == 0.5
    assert value(samples, "kubeprobe_resident_up", **pair) == 0
    assert value(samples, "kubeprobe_resident_samples_dropped", **pair) == 4
