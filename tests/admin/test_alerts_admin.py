"""Alerts in the admin: acknowledge and resolve with a note, channels with write-only
config and a real "send test", silences validated."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.alerts import services
from apps.alerts.models import Alert, AlertRule, AlertState, Channel, Silence
from tests.admin.helpers import form_errors, messages_of
from tests.alerts.conftest import add_run
from tests.alerts.transports.helpers import Receiver
from tests.factories import CaseFactory, ClusterFactory

pytestmark = pytest.mark.django_db


def logged_in(client: Client, make_user: Callable[..., Any], role: str) -> Client:
    client.force_login(make_user(role))
    return client


def firing_alerts(count: int) -> list[Alert]:
    rule = AlertRule.objects.get(name="default")
    rule.consecutive_failures = 1
    rule.save()
    case = CaseFactory()
    alerts = []
    for i in range(count):
        cluster = ClusterFactory(name=f"prod-{i}")
        add_run(case, cluster, False)
        alert = services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
        assert alert is not None and alert.state == AlertState.FIRING
        alerts.append(alert)
    return alerts


def test_operator_acknowledges_with_a_note_and_an_expiry(
    client: Client, make_user: Callable[..., Any]
) -> None:
    alerts = firing_alerts(2)
    logged_in(client, make_user, "operator")
    ids = [str(a.pk) for a in alerts]
    page = client.post("/admin/alerts/alert/", {"action": "acknowledge", "_selected_action": ids})
    assert page.status_code == 200
    assert b"Someone is on it" in page.content and b"prod-0" in page.content
    response = client.post(
        "/admin/alerts/alert/",
        {
            "action": "acknowledge",
            "_selected_action": ids,
            "apply": "1",
            "note": "CNI restart",
            "hours": "2",
        },
        follow=True,
    )
    assert "Acknowledge: 2 alerts." in messages_of(response)
    for alert in alerts:
        alert.refresh_from_db()
        assert alert.state == AlertState.ACKNOWLEDGED and alert.ack_note == "CNI restart"
        assert alert.ack_until is not None
        assert abs((alert.ack_until - timezone.now()) - timedelta(hours=2)) < timedelta(minutes=1)


def test_bad_acknowledgement_input_is_a_form_error(
    client: Client, make_user: Callable[..., Any]
) -> None:
    [alert] = firing_alerts(1)
    logged_in(client, make_user, "operator")
    page = client.post(
        "/admin/alerts/alert/",
        {"action": "acknowledge", "_selected_action": [alert.pk], "apply": "1", "hours": "-3"},
    )
    assert page.status_code == 200
    assert b"Give between 0.1 and 720 hours." in page.content
    alert.refresh_from_db()
    assert alert.state == AlertState.FIRING


def test_resolve_by_hand_and_refusals_are_reported(
    client: Client, make_user: Callable[..., Any]
) -> None:
    alerts = firing_alerts(2)
    services.alert_resolve_by_hand(alert_id=alerts[1].pk, user=None, note="already")
    logged_in(client, make_user, "operator")
    response = client.post(
        "/admin/alerts/alert/",
        {
            "action": "resolve",
            "_selected_action": [a.pk for a in alerts],
            "apply": "1",
            "note": "fixed",
        },
        follow=True,
    )
    shown = messages_of(response)
    assert "Resolve: 1 alert." in shown
    assert any("this alert is not open" in m for m in shown)


def test_viewer_sees_alerts_but_cannot_act(client: Client, make_user: Callable[..., Any]) -> None:
    [alert] = firing_alerts(1)
    logged_in(client, make_user, "viewer")
    page = client.get("/admin/alerts/alert/")
    assert page.status_code == 200 and b"prod-0" in page.content
    assert b'value="acknowledge"' not in page.content
    response = client.post(
        "/admin/alerts/alert/",
        {"action": "acknowledge", "_selected_action": [alert.pk], "apply": "1"},
    )
    alert.refresh_from_db()
    assert alert.state == AlertState.FIRING
    assert response.status_code in (200, 302, 403)


def test_alert_page_shows_timeline_and_run_link(
    client: Client, make_user: Callable[..., Any]
) -> None:
    [alert] = firing_alerts(1)
    logged_in(client, make_user, "viewer")
    page = client.get(f"/admin/alerts/alert/{alert.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "ok → firing (firing)" in html
    assert f"/admin/runs/proberun/{alert.last_run_id}/change/" in html
    assert "Container runtime" in html  # the diagnosis


def test_channel_form_validates_config_and_never_shows_secrets(
    client: Client, make_user: Callable[..., Any]
) -> None:
    receiver = Receiver()
    try:
        logged_in(client, make_user, "admin")
        bad = client.post(
            "/admin/alerts/channel/add/",
            {
                "name": "hook",
                "kind": "webhook",
                "config": json.dumps({"url": "ftp://nope"}),
                "enabled": "on",
                "severities": "[]",
                "matchers": "[]",
                "send_resolved": "on",
            },
        )
        assert bad.status_code == 200
        assert "url" in json.dumps(form_errors(bad))
        bad = client.post(
            "/admin/alerts/channel/add/",
            {
                "name": "hook",
                "kind": "webhook",
                "config": json.dumps({"url": receiver.url()}),
                "enabled": "on",
                "severities": '["loud"]',
                "matchers": "[]",
            },
        )
        assert "severities" in form_errors(bad)
        ok = client.post(
            "/admin/alerts/channel/add/",
            {
                "name": "hook",
                "kind": "webhook",
                "config": json.dumps({"url": receiver.url(), "secret": "hmac-key"}),
                "enabled": "on",
                "severities": "[]",
                "matchers": "[]",
                "send_resolved": "on",
            },
        )
        assert ok.status_code == 302, form_errors(ok)
        channel = Channel.objects.get(name="hook")
        page = client.get(f"/admin/alerts/channel/{channel.pk}/change/")
        assert b"hmac-key" not in page.content and "••••".encode() in page.content
        # saving the form back with the masked secret keeps the secret
        client.post(
            f"/admin/alerts/channel/{channel.pk}/change/",
            {
                "name": "hook",
                "kind": "webhook",
                "config": json.dumps({"url": receiver.url(), "secret": "••••"}),
                "enabled": "on",
                "severities": '["critical"]',
                "matchers": "[]",
                "send_resolved": "on",
            },
        )
        channel.refresh_from_db()
        assert json.loads(channel.config_json)["secret"] == "hmac-key"
        assert channel.severities == ["critical"]
        response = client.post(
            "/admin/alerts/channel/",
            {"action": "send_test", "_selected_action": [channel.pk]},
            follow=True,
        )
        assert any(m.startswith("hook: sent in") for m in messages_of(response))
        assert receiver.last.json()["event"] == "test"
        assert receiver.last.headers["x-kubeprobe-signature"].startswith("sha256=")
    finally:
        receiver.stop()


def test_silence_form_names_bad_matchers(client: Client, make_user: Callable[..., Any]) -> None:
    logged_in(client, make_user, "operator")
    now = timezone.now()
    data = {
        "matchers": json.dumps([{"name": "zone", "value": "a"}]),
        "starts_at_0": now.strftime("%Y-%m-%d"),
        "starts_at_1": now.strftime("%H:%M:%S"),
        "ends_at_0": (now + timedelta(hours=1)).strftime("%Y-%m-%d"),
        "ends_at_1": (now + timedelta(hours=1)).strftime("%H:%M:%S"),
        "comment": "kernel patching",
    }
    bad = client.post("/admin/alerts/silence/add/", data)
    assert "unknown name 'zone'" in json.dumps(form_errors(bad))
    data["matchers"] = json.dumps([{"name": "cluster", "value": "prod-1"}])
    ok = client.post("/admin/alerts/silence/add/", data)
    assert ok.status_code == 302, form_errors(ok)
    silence = Silence.objects.get()
    assert silence.created_by is not None and silence.is_active


def test_alert_list_filters_by_cluster_and_case_with_open_alerts(
    client: Client, make_user: Callable[..., Any]
) -> None:
    alerts = firing_alerts(3)
    logged_in(client, make_user, "viewer")
    page = client.get("/admin/alerts/alert/")
    html = page.content.decode()
    assert "cluster (with open alerts)" in html and "prod-1 (1)" in html
    filtered = client.get("/admin/alerts/alert/?cluster=prod-1")
    assert [a.cluster.name for a in filtered.context["cl"].result_list] == ["prod-1"]
    by_case = client.get(f"/admin/alerts/alert/?case={alerts[0].case.name}&open=yes")
    assert len(by_case.context["cl"].result_list) == 3
