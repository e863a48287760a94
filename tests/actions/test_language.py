"""Action policy validation and the approval messages follow the language."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from apps.actions.models import ActionKind, ActionPolicy, validate_job_template

pytestmark = pytest.mark.django_db


def test_validation_in_both_languages() -> None:
    policy = ActionPolicy(name="restart", action=ActionKind.WEBHOOK)
    for language, url_message, job_message in (
        ("zh-hans", "Webhook 动作需要一个 URL。", "Job 模版必须是一个对象：Job 的 spec。"),
        (
            "en",
            "A webhook action needs a URL.",
            "The Job template must be an object: the Job's spec.",
        ),
    ):
        with translation.override(language):
            with pytest.raises(ValidationError) as refused:
                policy.clean()
            assert refused.value.message_dict["webhook_url"] == [url_message]
            with pytest.raises(ValidationError) as refused:
                validate_job_template([])
            assert refused.value.messages == [job_message]


def test_choice_labels_in_chinese() -> None:
    with translation.override("zh-hans"):
        assert str(ActionKind.JOB.label) == "Kubernetes Job"
        assert str(ActionKind.NONE.label) == "无（仅通知/升级）"
