"""Why the portal closed a run is stored in English (diagnosis rules read it) with its
message's params, and read in the reader's language on the API and the run page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import translation
from rest_framework.test import APIClient

from apps.core.said import render_field, say
from apps.runs import said as m
from apps.runs.finishing import run_finish
from apps.runs.models import RunState
from tests.factories import ProbeRunFactory

pytestmark = pytest.mark.django_db


def test_a_timed_out_run_reads_in_english_and_in_chinese(
    admin_api: APIClient, make_user: Callable[..., Any]
) -> None:
    run = ProbeRunFactory(state=RunState.RUNNING)
    why = say(m.POD_PART, text=say(m.NO_REPORT, seconds=30), pod="ImagePullBackOff")
    assert run_finish(run=run, state=RunState.TIMED_OUT, reason=why)
    run.refresh_from_db()
    assert run.reason == "no report within the case timeout of 30s; pod: ImagePullBackOff"
    with translation.override("zh-hans"):
        chinese = render_field(run, "reason")
    assert chinese == "在用例超时时间 30 秒内没有上报；Pod：ImagePullBackOff"

    url = f"/api/v1/runs/{run.pk}/"
    assert admin_api.get(url, HTTP_ACCEPT_LANGUAGE="en").json()["reason"] == run.reason
    assert admin_api.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").json()["reason"] == chinese
    browser = Client()
    browser.force_login(make_user("admin", "boss"))
    page = browser.get(f"/dashboard/runs/{run.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert chinese in page.content.decode() and "no report within" not in page.content.decode()
