"""The alerts API's 400s follow Accept-Language (the shared inputs of apps/alerts/inputs.py,
serializer checks and model validation alike)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.alerts import services
from apps.alerts.models import AlertRule, AlertState
from tests.alerts.conftest import add_run
from tests.factories import CaseFactory, ClusterFactory

pytestmark = pytest.mark.django_db


def errors(api: APIClient, path: str, body: dict[str, Any], language: str) -> Any:
    answer = api.post(path, body, format="json", HTTP_ACCEPT_LANGUAGE=language)
    assert answer.status_code == 400, answer.content
    return answer.json()


def test_acknowledge_limits_in_both_languages(admin_api: APIClient) -> None:
    AlertRule.objects.filter(name="default").update(consecutive_failures=1)
    case, cluster = CaseFactory(name="pod-lifecycle"), ClusterFactory(name="prod-1")
    add_run(case, cluster, False)
    alert = services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    assert alert is not None and alert.state == AlertState.FIRING
    path = f"/api/v1/alerts/{alert.pk}/acknowledge/"
    hours = {"hours": 0}
    assert errors(admin_api, path, hours, "zh-hans") == {"hours": ["请输入 0.1 到 720 小时。"]}
    assert errors(admin_api, path, hours, "en") == {"hours": ["Give between 0.1 and 720 hours."]}
    note = {"note": "x" * 2001}
    assert errors(admin_api, path, note, "zh-hans") == {
        "note": ["最多 2000 个字符；当前为 2001 个。"]
    }
    assert errors(admin_api, path, note, "en") == {
        "note": ["At most 2000 characters; this one has 2001."]
    }


def test_channel_and_silence_errors_in_both_languages(admin_api: APIClient) -> None:
    ClusterFactory(name="prod-1")
    kinds = {"name": "kinds", "kind": "inbox", "config": {}}
    assert errors(admin_api, "/api/v1/channels/", kinds, "zh-hans")["name"] == [
        "“kinds”是保留名称，请换一个名称。"
    ]
    assert errors(admin_api, "/api/v1/channels/", kinds, "en")["name"] == [
        "'kinds' is reserved; choose another name."
    ]
    silence = {
        "matchers": [{"name": "team", "value": "x"}],
        "ends_at": "2099-01-01T00:00:00Z",
    }
    chinese = errors(admin_api, "/api/v1/silences/", silence, "zh-hans")
    assert "第 1 个匹配条件：未知名称 'team'" in str(chinese)
    english = errors(admin_api, "/api/v1/silences/", silence, "en")
    assert "Matcher 1: unknown name 'team'" in str(english)


def test_rule_validation_in_both_languages(admin_api: APIClient) -> None:
    rule = {"name": "r1", "consecutive_failures": 2, "severity": "warning", "escalate_to": "info"}
    rule["escalate_after_minutes"] = 5
    assert errors(admin_api, "/api/v1/alert-rules/", rule, "zh-hans")["escalate_to"] == [
        "升级必须提高级别。"
    ]
    assert errors(admin_api, "/api/v1/alert-rules/", rule, "en")["escalate_to"] == [
        "Escalation must raise the severity."
    ]
