"""Alert rules over resident series: through the run alerts' state machine, silences and channels."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.alerts import channels, delivery, sending
from apps.alerts.models import Alert, AlertState, Channel, Silence
from apps.resident.alerting import resident_alerts_judge
from apps.resident.models import ResidentAlertRule
from tests.alerts.transports.helpers import Receiver
from tests.factories import ClusterFactory
from tests.resident.helpers import batch, make_probe, post_samples, windows

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def webhook(receiver: Receiver) -> Channel:
    return channels.channel_save(name="ops-hook", kind="webhook", config={"url": receiver.url()})


@pytest.fixture
def probe() -> dict[str, Any]:
    cluster = ClusterFactory(name="prod-1")
    probe, token = make_probe(clusters=[cluster])
    return {"probe": probe, "token": token, "cluster": cluster}


def send(setup: dict[str, Any], *, failures: int, p99: float = 8.0, ago: float = 60) -> None:
    start = timezone.now() - timedelta(seconds=ago)
    wins = windows(start, 30, count=10, failures=failures, p99=p99)
    answer = post_samples(Client(), batch("etcd-resident", "prod-1", wins), setup["token"])
    assert answer.status_code == 202, answer.content


def deliver_and_send(now: Any = None) -> list[str | None]:
    now = now or timezone.now()
    ids = delivery.flips_deliver(now=now + timedelta(seconds=5), send=False)
    return [sending.notification_send(i) for i in ids]


def alert_of(setup: dict[str, Any]) -> Alert:
    return Alert.objects.get(case=setup["probe"].alert_case, cluster=setup["cluster"])


def test_availability_below_fires_notifies_and_recovery_resolves(
    probe: dict[str, Any], webhook: Channel, receiver: Receiver
) -> None:
    ResidentAlertRule.objects.create(
        name="etcd-slo",
        probe=probe["probe"],
        availability_below=99.0,
        window_minutes=5,
        severity="critical",
    )
    send(probe, failures=0)
    assert resident_alerts_judge() == 0  # healthy: nothing to change
    send(probe, failures=2, ago=30)  # 60 of 600 samples failed: 90 %
    assert resident_alerts_judge() == 1
    alert = alert_of(probe)
    assert alert.state == AlertState.FIRING and alert.severity == "critical"
    assert "availability 90.00% over the last 5 min, below 99%" in alert.reason
    assert alert.step == "availability" and alert.error == "60 of 600 samples failed"
    assert resident_alerts_judge() == 0  # still firing: no new flip
    assert deliver_and_send() == ["sent"]
    body = receiver.last.json()
    assert body["event"] == "firing" and body["case"] == "resident-etcd-resident"
    assert body["items"][0]["cluster"] == "prod-1"

    # Recovery: the failing windows leave the window.
    later = timezone.now() + timedelta(minutes=6)
    send(probe, failures=0, ago=-300)  # fresh, healthy samples in the later window
    assert resident_alerts_judge(now=later) == 1
    assert alert_of(probe).state == AlertState.OK
    assert deliver_and_send(later) == ["sent"]
    assert receiver.last.json()["event"] == "resolved"


def test_latency_and_no_data(probe: dict[str, Any]) -> None:
    ResidentAlertRule.objects.create(
        name="global", latency_p99_above_ms=50, no_data_minutes=2, window_minutes=5
    )
    send(probe, failures=0, p99=80.0)
    assert resident_alerts_judge() == 1
    alert = alert_of(probe)
    assert "p99 latency 80.0 ms" in alert.reason and alert.step == "latency"
    # Faster samples bring the window's p99 (mean of the windows' p99s) to 45 ms: resolved.
    send(probe, failures=0, p99=10.0, ago=-1)
    assert resident_alerts_judge() == 1
    assert alert_of(probe).state == AlertState.OK
    # Then nothing arrives any more: no data fires.
    later = timezone.now() + timedelta(minutes=10)
    assert resident_alerts_judge(now=later) == 1
    alert = alert_of(probe)
    assert alert.state == AlertState.FIRING and "no samples for 10 min" in alert.reason
    # A probe's own rule wins over the global one (no no-data condition, a high limit).
    ResidentAlertRule.objects.create(name="own", probe=probe["probe"], latency_p99_above_ms=500)
    send(probe, failures=0, p99=90.0, ago=-1)
    assert resident_alerts_judge() == 1
    assert alert_of(probe).state == AlertState.OK


def test_no_data_fires(probe: dict[str, Any]) -> None:
    ResidentAlertRule.objects.create(name="global", no_data_minutes=2)
    send(probe, failures=0)
    assert resident_alerts_judge() == 0
    assert resident_alerts_judge(now=timezone.now() + timedelta(minutes=3)) == 1
    alert = alert_of(probe)
    assert alert.state == AlertState.FIRING and "no samples for 3 min" in alert.reason


def test_a_silence_keeps_it_quiet(
    probe: dict[str, Any], webhook: Channel, receiver: Receiver
) -> None:
    ResidentAlertRule.objects.create(name="global", availability_below=99.0)
    Silence.objects.create(
        matchers=[{"name": "case", "value": "resident-etcd-resident"}],
        ends_at=timezone.now() + timedelta(hours=1),
        comment="etcd maintenance",
    )
    send(probe, failures=5)
    assert resident_alerts_judge() == 1
    assert alert_of(probe).state == AlertState.SILENCED
    deliver_and_send()
    assert receiver.requests == []
