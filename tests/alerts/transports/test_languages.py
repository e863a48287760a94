"""Every transport's own texts (labels, buttons, link names, banners, fallbacks) follow
the active language; the caller sets it to the channel's (apps/alerts/sending.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.utils import translation

from apps.alerts.transports import alertmanager, dingtalk, email, feishu, pagerduty, slack, wecom
from apps.alerts.transports.base import make_test_message
from tests.alerts.transports.helpers import ENDED, PORTAL, message

# English words of the transports' own texts that must not show in a Chinese message.
ENGLISH = ("Case", "Severity", "Event:", "Open run", "All alerts", "Open alerts", "Diagnosis")


def rendered() -> dict[str, str]:
    """Each transport's payload (or body) for a two-cluster failure, as text."""
    failing = message("prod-1", "prod-2")
    payloads: dict[str, Any] = {
        "dingtalk": dingtalk.payload(failing, at_mobiles=[], at_all=False),
        "wecom": wecom.payload(failing),
        "feishu": feishu.card(failing),
        "slack": slack.payload(failing),
        "email": email.html_body(failing),
        "pagerduty": pagerduty.event(failing, failing.items[1], "k" * 32),
        "alertmanager": alertmanager.alert(
            failing,
            failing.items[1],
            severity="critical",
            ends_at=datetime(2025, 3, 5, tzinfo=UTC),
            extra_labels={},
        ),
    }
    return {
        kind: body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        for kind, body in payloads.items()
    }


def test_english_by_default() -> None:
    texts = rendered()
    assert "**Case:** statefulset-lifecycle  **Severity:** critical" in texts["dingtalk"]
    assert '"Open run"' in texts["feishu"] and "*Case*" in texts["slack"]
    assert "<b>Case:</b>" in texts["email"] and "Open alerts in KubeProbe" in texts["email"]
    assert '"Pod log"' in texts["pagerduty"]
    assert "statefulset-lifecycle failed on prod-2" in texts["pagerduty"]
    assert "statefulset-lifecycle failed on prod-2" in texts["alertmanager"]


def test_chinese_for_every_transport() -> None:
    with translation.override("zh-hans"):
        texts = rendered()
    assert "**用例：** statefulset-lifecycle  **级别：** 严重  **事件：** 告警" in texts["dingtalk"]
    assert "[告警]" in texts["dingtalk"] and "[告警]" in texts["wecom"]
    assert "步骤 `create-pod`" in texts["wecom"] and "[运行](" in texts["wecom"]
    assert '"查看运行"' in texts["feishu"] and '"全部告警"' in texts["feishu"]
    assert "*用例*" in texts["slack"] and "*诊断*" in texts["slack"] and "[告警]" in texts["slack"]
    assert "<b>用例：</b>" in texts["email"] and "<th>集群</th>" in texts["email"]
    assert "在 KubeProbe 中查看告警" in texts["email"]
    assert '"Pod 日志"' in texts["pagerduty"]
    assert "statefulset-lifecycle 在 prod-2 上失败 于步骤 create-pod" in texts["pagerduty"]
    assert "statefulset-lifecycle 在 prod-2 上失败" in texts["alertmanager"]
    for kind in ("dingtalk", "wecom", "feishu", "slack", "email"):
        for word in ENGLISH:
            assert word not in texts[kind], (kind, word)


def test_recovery_and_email_text_in_chinese() -> None:
    resolved = message(event="resolved", ended_at=ENDED, title="pod-lifecycle 在 prod-1 上已恢复")
    with translation.override("zh-hans"):
        body = dingtalk.payload(resolved, at_mobiles=[], at_all=False)["markdown"]
        mail = email.text_body(message(text="正文"))
        subject = email.subject(resolved)
    assert body["title"] == "[已恢复] pod-lifecycle 在 prod-1 上已恢复"
    assert "**恢复时间：** 2025-03-04 06:00:00 UTC" in body["text"]
    assert f"告警：{PORTAL}" in mail
    assert subject == "[已恢复] pod-lifecycle 在 prod-1 上已恢复"


@pytest.mark.parametrize(
    ("language", "title"),
    [
        ("en", "KubeProbe test notification: this channel works"),
        ("zh-hans", "KubeProbe 测试通知：此通知渠道可用"),
    ],
)
def test_the_test_message(language: str, title: str) -> None:
    with translation.override(language):
        assert make_test_message().title == title
