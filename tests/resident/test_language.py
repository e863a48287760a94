"""Resident probe errors follow the request's language (API) or the active one (model)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation
from rest_framework.test import APIClient

from apps.resident.models import validate_resident_env
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db


def test_a_probe_without_targets_is_refused_in_the_asked_language(admin_api: APIClient) -> None:
    ClusterFactory(name="prod-1")
    body = {"name": "etcd-resident", "image": "registry.example/r:1", "clusters": []}
    for language, message in (
        ("zh-hans", "请至少指定一个集群或集群组。"),
        ("en", "Name at least one cluster or group."),
    ):
        answer = admin_api.post(
            "/api/v1/resident/", body, format="json", HTTP_ACCEPT_LANGUAGE=language
        )
        assert answer.status_code == 400
        assert answer.json()["clusters"] == [message]


def test_reserved_env_in_both_languages() -> None:
    for language, message in (
        ("zh-hans", "KUBEPROBE_* 变量由 operator 设置：KUBEPROBE_TOKEN。"),
        ("en", "KUBEPROBE_* variables are set by the operator: KUBEPROBE_TOKEN."),
    ):
        with translation.override(language):
            with pytest.raises(ValidationError) as refused:
                validate_resident_env({"KUBEPROBE_TOKEN": "x"})
            # The message is lazy: read it in the language it is meant for.
            assert refused.value.messages == [message]
