"""An incident's title and timeline are stored in English with their message, and read
in the reader's language: the same rows in English and in Chinese, API and dashboard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import translation
from rest_framework.test import APIClient

from apps.alerts.models import Alert, AlertRule
from apps.core.said import render_field
from apps.diagnosis.models import Incident
from tests.diagnosis.helpers import case_of, failed_step, finish
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db


def test_a_cluster_incident_reads_in_either_language(
    admin_api: APIClient, make_user: Callable[..., Any]
) -> None:
    AlertRule.objects.filter(name="default").update(consecutive_failures=1)
    cluster = ClusterFactory(name="prod-7")
    finish(
        case_of("etcd", "etcd-meta"), cluster, failed_step("put https://10.0.0.5:2379", "timed out")
    )
    finish(
        case_of("lifecycle", "pod-lifecycle"),
        cluster,
        failed_step("create", "HTTP 500: etcdserver: request timed out"),
    )
    finish(
        case_of("canary", "canary-nginx"), cluster, failed_step("deploy", "HTTP 503: unavailable")
    )
    [incident] = Incident.objects.all()
    assert incident.title == "3 cases failing on prod-7: etcd" and incident.title_params
    with translation.override("zh-hans"):
        chinese_title = render_field(incident, "title")
        opened = render_field(incident.timeline.order_by("id").first(), "text")
        alert = Alert.objects.exclude(incident_ref="").first()
        assert render_field(alert, "incident_title") == chinese_title
    assert chinese_title.startswith("3 个用例在 prod-7 上失败：")
    assert "秒内于 prod-7 上失败；其中最底层的原因" in opened
    with translation.override("en"):
        assert render_field(incident, "title") == incident.title

    url = f"/api/v1/incidents/{incident.pk}/"
    english = admin_api.get(url, HTTP_ACCEPT_LANGUAGE="en").json()
    chinese = admin_api.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert english["title"] == incident.title and chinese["title"] == chinese_title
    assert "cases fail on prod-7" in english["timeline"][0]["text"]
    assert "秒内于 prod-7 上失败" in chinese["timeline"][0]["text"]

    browser = Client()
    browser.force_login(make_user("admin", "boss"))
    page = browser.get(
        f"/dashboard/incidents/{incident.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans"
    ).content.decode()
    assert chinese_title in page and "cases failing on" not in page
    assert "joined (run" not in page and "加入（运行" in page
