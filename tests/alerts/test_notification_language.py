"""Each channel gets its messages in its own language: one alert, one delivery, a
DingTalk group in Chinese, a Slack channel and a webhook in English or Chinese, at
real HTTP receivers. Machine-readable parts (JSON keys, event and severity values)
stay English whatever the language."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.alerts import channels, delivery, sending, services
from apps.alerts.models import AlertRule, Channel, Notification
from tests.alerts.conftest import add_run
from tests.alerts.transports.helpers import Receiver
from tests.factories import CaseFactory, ClusterFactory

pytestmark = pytest.mark.django_db

ERROR = "Failed to create pod sandbox"
# A shipped rule's summary (apps/diagnosis/defaults.py): notifications translate it.
SANDBOX = (
    "The container runtime could not create the pod sandbox or start the container: "
    "check containerd/CRI-O and runc on the node and their logs."
)


@pytest.fixture
def robots() -> Iterator[tuple[Receiver, Receiver]]:
    """A DingTalk-like receiver (answers errcode 0) and a Slack-like one (answers ok)."""
    dingtalk, slack = Receiver(), Receiver()
    dingtalk.respond(200, {"errcode": 0, "errmsg": "ok"})
    slack.respond(200, "ok")
    yield dingtalk, slack
    dingtalk.stop()
    slack.stop()


def deliver_and_send() -> list[str | None]:
    ids = delivery.flips_deliver(now=timezone.now() + timedelta(seconds=5), send=False)
    return [sending.notification_send(i) for i in ids]


def test_one_alert_reaches_each_channel_in_its_language(
    robots: tuple[Receiver, Receiver], receiver: Receiver
) -> None:
    dingtalk, slack = robots
    AlertRule.objects.filter(name="default").update(consecutive_failures=1)
    ding = channels.channel_save(
        name="ops-dingtalk",
        kind="dingtalk",
        config={"url": dingtalk.url("/robot/send?access_token=tok123")},
        language="zh-hans",
    )
    channels.channel_save(name="ops-slack", kind="slack", config={"url": slack.url()})
    channels.channel_save(
        name="ops-hook", kind="webhook", config={"url": receiver.url()}, language="zh-hans"
    )
    case, cluster = CaseFactory(name="statefulset-lifecycle"), ClusterFactory(name="prod-1")
    add_run(case, cluster, False, error=ERROR, root_cause_summary=SANDBOX)
    services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)

    assert deliver_and_send() == ["sent", "sent", "sent"]
    # DingTalk, in Chinese: banner, title, facts, the failing step, links, diagnosis.
    markdown = dingtalk.last.json()["markdown"]
    assert markdown["title"] == (
        f"[告警] [警告] statefulset-lifecycle 在 prod-1 上失败: ready: {ERROR}"
    )
    text = markdown["text"]
    assert "**用例：** statefulset-lifecycle  **级别：** 警告  **事件：** 告警" in text
    assert "**集群：** prod-1" in text
    assert "- **prod-1** 步骤 `ready` ([运行](" in text and "[日志](" in text
    assert "容器运行时无法创建 Pod 沙箱或启动容器" in text and "[在 KubeProbe 中查看告警](" in text
    assert "**诊断：** " in text
    for english in ("Case:", "Severity:", "Event:", "step `", "Open alerts", "[run]("):
        assert english not in text
    stored = Notification.objects.get(channel=ding)
    assert stored.title.startswith("[警告] statefulset-lifecycle 在 prod-1 上失败")

    # Slack, in English (the default), from the same flips in the same delivery.
    body = slack.last.json()
    assert body["text"] == (
        f"[FIRING] [warning] statefulset-lifecycle failing on prod-1: ready: {ERROR}"
    )
    blocks = body["attachments"][0]["blocks"]
    facts = [f["text"] for f in blocks[1]["fields"]]
    assert facts[:3] == ["*Case*\nstatefulset-lifecycle", "*Severity*\nwarning", "*Event*\nfiring"]
    assert [b["text"]["text"] for b in blocks[-1]["elements"]] == ["Open run", "All alerts"]
    assert "could not create the pod sandbox or start the container" in json.dumps(body)

    # The webhook in Chinese: the same keys and machine values, human texts translated.
    hook = receiver.last.json()
    assert hook["event"] == "firing" and hook["severity"] == "warning"
    assert {"version", "event", "severity", "case", "title", "text", "items"} <= set(hook)
    assert hook["items"][0]["step"] == "ready"
    assert hook["title"].startswith("[警告] statefulset-lifecycle 在 prod-1 上失败")
    assert "用例：statefulset-lifecycle   级别：警告   事件：告警" in hook["text"]
    assert "原因：" in hook["text"] and "诊断：" in hook["text"]

    # The recovery, the same way.
    add_run(case, cluster, True)
    services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    assert deliver_and_send() == ["sent", "sent", "sent"]
    resolved = dingtalk.last.json()["markdown"]
    assert resolved["title"] == "[已恢复] [警告] statefulset-lifecycle 在 prod-1 上已恢复"
    assert "**事件：** 已恢复" in resolved["text"] and "**恢复时间：** " in resolved["text"]
    assert slack.last.json()["text"] == (
        "[RESOLVED] [warning] statefulset-lifecycle recovered on prod-1"
    )
    assert receiver.last.json()["event"] == "resolved"


def test_grouped_messages_count_clusters_in_the_channel_language(receiver: Receiver) -> None:
    AlertRule.objects.filter(name="default").update(consecutive_failures=1)
    channels.channel_save(
        name="ops-hook", kind="webhook", config={"url": receiver.url()}, language="zh-hans"
    )
    case = CaseFactory(name="pod-lifecycle")
    for name in ("prod-2", "prod-1"):
        cluster = ClusterFactory(name=name)
        add_run(case, cluster, False)
        services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    assert deliver_and_send() == ["sent"]
    assert receiver.last.json()["title"] == (
        "[警告] pod-lifecycle 在 2 个集群 (prod-1, prod-2) 上失败"
    )


def test_send_test_speaks_the_channel_language(receiver: Receiver) -> None:
    channel = channels.channel_save(
        name="ops-hook", kind="webhook", config={"url": receiver.url()}, language="zh-hans"
    )
    assert sending.channel_send_test(channel_id=channel.pk).status == "sent"
    body = receiver.last.json()
    assert body["title"] == "KubeProbe 测试通知：此通知渠道可用"
    assert body["text"].startswith("这是一条来自 KubeProbe 的测试通知。")
    channel.language = "en"
    channel.save()
    sending.channel_send_test(channel_id=channel.pk)
    assert receiver.last.json()["title"] == "KubeProbe test notification: this channel works"


def test_channel_language_defaults_to_english_and_is_checked(
    admin_api: APIClient, receiver: Receiver
) -> None:
    plain = channels.channel_save(name="plain", kind="webhook", config={"url": receiver.url()})
    assert plain.language == "en"
    data: dict[str, Any] = {
        "name": "zh-hook",
        "kind": "webhook",
        "config": {"url": receiver.url()},
        "language": "zh-hans",
    }
    created = admin_api.post("/api/v1/channels/", data, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["language"] == "zh-hans"
    assert Channel.objects.get(name="zh-hook").language == "zh-hans"
    refused = admin_api.post(
        "/api/v1/channels/", {**data, "name": "fr-hook", "language": "fr"}, format="json"
    )
    assert refused.status_code == 400
    assert "language" in refused.json()
