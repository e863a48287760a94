"""A gate decision's reasons are stored once, in English with their messages' params,
and read in each reader's language: the asker's, then anyone's reading it later."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.utils import translation
from rest_framework.test import APIClient

from apps.core.said import render_items
from apps.gating.models import GateDecision
from apps.runs.models import RunState
from tests.factories import ClusterFactory
from tests.gating.helpers import cases, finished, gating_set, policy

pytestmark = pytest.mark.django_db


def test_one_decision_read_in_english_and_in_chinese(
    api_client_for: Callable[[str], APIClient],
) -> None:
    cluster = ClusterFactory(name="prod-1")
    [case] = cases(1)
    policy([("", gating_set(case))])
    finished(case, cluster, RunState.FAILED)
    client = api_client_for("viewer")
    asked = client.get("/api/v1/gate", {"cluster": "prod-1"}, HTTP_ACCEPT_LANGUAGE="en").json()
    [reason] = asked["reasons"]
    assert reason["message"].startswith(f"{case.name}: failed at step '")
    decision = GateDecision.objects.get(pk=asked["id"])
    assert decision.reasons[0]["message"] == reason["message"]  # stored as written, English

    url = f"/api/v1/gate/decisions/{decision.pk}/"
    later = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    [chinese] = later["reasons"]
    assert chinese["message"].startswith(f"{case.name}：失败 于步骤“")
    assert "failed at step" not in chinese["message"]
    # Everything else in the reason is the same, machine-readable words included.
    assert {k: v for k, v in chinese.items() if k != "message"} == {
        k: v for k, v in reason.items() if k != "message"
    }
    with translation.override("zh-hans"):
        assert render_items(decision.reasons)[0]["message"] == chinese["message"]
