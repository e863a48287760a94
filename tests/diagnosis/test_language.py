"""The diagnosis API's 404 and a rule's validation follow the language."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation
from rest_framework.test import APIClient

from apps.diagnosis.models import DiagnosisRule

pytestmark = pytest.mark.django_db


def test_labelling_an_unknown_run_is_404_in_the_asked_language(
    api_client_for: Callable[[str], APIClient],
) -> None:
    api = api_client_for("operator")
    url = "/api/v1/diagnoses/999999/root-cause/"
    zh = api.post(url, {"category": "etcd"}, format="json", HTTP_ACCEPT_LANGUAGE="zh-hans")
    en = api.post(url, {"category": "etcd"}, format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert zh.status_code == en.status_code == 404
    assert zh.json()["detail"] == "没有运行 999999。"
    assert en.json()["detail"] == "No run 999999."


def test_a_rule_without_conditions_in_both_languages() -> None:
    rule = DiagnosisRule(name="empty", category="etcd", summary="s")
    for language, message in (
        ("zh-hans", "规则至少需要一个条件。"),
        ("en", "A rule needs at least one condition."),
    ):
        with translation.override(language), pytest.raises(ValidationError) as refused:
            rule.clean()
        assert refused.value.message_dict["error_pattern"] == [message]


def test_shipped_summaries_are_marked_and_read_in_chinese() -> None:
    from django.utils.translation import gettext

    from apps.diagnosis.defaults import RULES
    from apps.diagnosis.summaries import SUMMARIES

    assert set(SUMMARIES) == {rule["summary"] for rule in RULES}
    etcd = "etcd answers slowly: check disk fsync latency, leader changes and load."
    with translation.override("zh-hans"):
        assert gettext(etcd) == "etcd 响应缓慢：检查磁盘 fsync 延迟、leader 变更和负载。"
        assert gettext("A summary an operator wrote.") == "A summary an operator wrote."
