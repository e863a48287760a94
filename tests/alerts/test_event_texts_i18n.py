"""Texts written when an alert changes (its "why", flip notes, timeline lines) are stored
in English with their message and parameters, and read in the reader's language: the same
row in English and in Chinese, on the API, the dashboard, the admin and in a notification."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone, translation
from rest_framework.test import APIClient

from apps.alerts import channels, delivery, sending, services
from apps.alerts.models import Alert, AlertFlip, AlertRule
from apps.core.said import render, render_field
from tests.alerts.conftest import add_run
from tests.alerts.transports.helpers import Receiver
from tests.factories import CaseFactory, ClusterFactory

pytestmark = pytest.mark.django_db


def in_language(language: str, text: str, params: Any) -> str:
    with translation.override(language):
        return render(text, params)


def test_an_alert_fired_and_resolved_by_hand_reads_in_either_language(
    report: Callable[..., Alert], make_user: Callable[..., Any]
) -> None:
    report(False)
    alert = report(False)
    alice = make_user("operator", "alice")
    alert = services.alert_resolve_by_hand(alert_id=alert.pk, user=alice, note="restarted")
    alert.refresh_from_db()
    # The stored texts stay the English ones (search, old clients); the params come along.
    assert alert.reason == "2 consecutive failed runs" and alert.reason_params
    lines = list(alert.timeline.order_by("id"))
    assert [line.text for line in lines] == [
        "ok → firing (firing)",
        "resolved by hand by alice: restarted",
        "firing → ok (resolved): resolved by hand by alice",
    ]
    assert [in_language("zh-hans", t.text, t.text_params) for t in lines] == [
        "正常 → 告警中（告警中）",
        "由 alice 手动恢复：restarted",
        "告警中 → 正常（已恢复）：由 alice 手动恢复",
    ]
    assert in_language("en", lines[2].text, lines[2].text_params) == lines[2].text
    assert in_language("zh-hans", alert.reason, alert.reason_params) == "连续 2 次运行失败"
    # An old row, written before the params existed, reads as stored in any language.
    assert in_language("zh-hans", "resolved by hand by bob", None) == "resolved by hand by bob"


def test_the_flapping_quiet_note_reads_in_either_language(
    report: Callable[..., Alert],
) -> None:
    AlertRule.objects.filter(name="default").update(consecutive_failures=1, flap_threshold=2)
    start = timezone.now() - timedelta(minutes=10)
    for minute, ok in enumerate((False, True, False)):
        alert = report(ok, now=start + timedelta(minutes=minute))
    assert alert.flapping_since is not None
    flip = AlertFlip.objects.get(alert=alert, event="flapping")
    assert flip.note == "more than 2 transitions in an hour; quiet until it is stable"
    assert in_language("en", flip.note, flip.note_params) == flip.note
    assert in_language("zh-hans", flip.note, flip.note_params) == (
        "一小时内状态变化超过 2 次；稳定之前不再通知"
    )


def test_the_api_and_the_dashboard_render_the_reason_in_the_readers_language(
    report: Callable[..., Alert], admin_api: APIClient, make_user: Callable[..., Any]
) -> None:
    report(False)
    alert = report(False)
    url = f"/api/v1/alerts/{alert.pk}/?expand=timeline"
    english = admin_api.get(url, HTTP_ACCEPT_LANGUAGE="en").json()
    chinese = admin_api.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert english["reason"] == "2 consecutive failed runs"
    assert chinese["reason"] == "连续 2 次运行失败"
    assert english["timeline"][0]["text"] == "ok → firing (firing)"
    assert chinese["timeline"][0]["text"] == "正常 → 告警中（告警中）"
    browser = Client()
    browser.force_login(make_user("admin", "boss"))
    run_page = browser.get(
        f"/dashboard/runs/{alert.last_run_id}/", HTTP_ACCEPT_LANGUAGE="zh-hans"
    ).content.decode()
    assert "连续 2 次运行失败" in run_page and "consecutive failed" not in run_page
    admin_page = browser.get(
        f"/admin/alerts/alert/{alert.pk}/change/", HTTP_ACCEPT_LANGUAGE="zh-hans"
    ).content.decode()
    assert "连续 2 次运行失败" in admin_page and "正常 → 告警中（告警中）" in admin_page
    assert "consecutive failed" not in admin_page


def test_a_zh_hans_channel_gets_the_translated_reason(receiver: Receiver) -> None:
    AlertRule.objects.filter(name="default").update(consecutive_failures=1)
    channels.channel_save(
        name="ops-hook", kind="webhook", config={"url": receiver.url("/zh")}, language="zh-hans"
    )
    channels.channel_save(name="ops-hook-en", kind="webhook", config={"url": receiver.url("/en")})
    case, cluster = CaseFactory(name="etcd-blackbox"), ClusterFactory(name="prod-2")
    add_run(case, cluster, False)
    alert = services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    assert alert is not None and alert.reason == "1 consecutive failed run"
    ids = delivery.flips_deliver(now=timezone.now() + timedelta(seconds=5), send=False)
    assert [sending.notification_send(i) for i in ids] == ["sent", "sent"]
    texts = {r.path: r.json()["text"] for r in receiver.requests}
    assert "原因：连续 1 次运行失败" in texts["/zh"]
    assert "consecutive failed" not in texts["/zh"]
    assert "Why: 1 consecutive failed run" in texts["/en"]
    with translation.override("zh-hans"):
        assert render_field(alert, "reason") == "连续 1 次运行失败"
