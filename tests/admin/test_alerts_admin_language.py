"""The alerts admin in Chinese (Accept-Language): a channel's language is set there,
choice labels, actions and their messages are translated."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from apps.alerts import services
from apps.alerts.models import AlertRule, Channel
from tests.admin.helpers import messages_of
from tests.alerts.conftest import add_run
from tests.alerts.transports.helpers import Receiver
from tests.factories import CaseFactory, ClusterFactory

pytestmark = pytest.mark.django_db
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def admin(client: Client, make_user: Callable[..., Any]) -> Client:
    client.force_login(make_user("admin"))
    return client


def test_a_channel_is_given_its_language_in_the_admin(admin: Client, receiver: Receiver) -> None:
    page = admin.get("/admin/alerts/channel/add/", **ZH)
    html = page.content.decode()
    assert "语言" in html and '<option value="zh-hans">简体中文</option>' in html
    saved = admin.post(
        "/admin/alerts/channel/add/",
        {
            "name": "dd",
            "kind": "webhook",
            "config": f'{{"url": "{receiver.url()}"}}',
            "enabled": "on",
            "severities": "[]",
            "matchers": "[]",
            "send_resolved": "on",
            "language": "zh-hans",
        },
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    channel = Channel.objects.get(name="dd")
    assert channel.language == "zh-hans"
    listing = admin.post(
        "/admin/alerts/channel/",
        {"action": "send_test", "_selected_action": [channel.pk]},
        follow=True,
        **ZH,
    )
    shown = messages_of(listing)[-1]  # after the add's own message
    assert shown.startswith("dd：已发送，耗时 ") and shown.endswith(" 毫秒。"), shown
    assert receiver.last.json()["title"] == "KubeProbe 测试通知：此通知渠道可用"


def test_alert_actions_and_states_in_chinese(admin: Client) -> None:
    AlertRule.objects.filter(name="default").update(consecutive_failures=1)
    case, cluster = CaseFactory(), ClusterFactory(name="prod-1")
    add_run(case, cluster, False)
    alert = services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    assert alert is not None
    listing = admin.get("/admin/alerts/alert/", **ZH).content.decode()
    assert "确认所选告警…" in listing and "告警中" in listing
    done = admin.post(
        "/admin/alerts/alert/",
        {"action": "acknowledge", "_selected_action": [alert.pk], "apply": "1", "note": "看着"},
        follow=True,
        **ZH,
    )
    assert messages_of(done) == ["确认：1 条告警。"]
