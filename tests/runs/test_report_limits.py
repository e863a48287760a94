"""Report bodies and ids the database cannot hold are refused with a clear 4xx."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.core.crypto import hash_token
from apps.runs.models import ProbeRun, RunState
from tests.runs.helpers import running_runs as running

TOKEN = "tok-" + "y" * 30


def post(run_id: int, raw: bytes, url: str | None = None, **headers: str):  # type: ignore[no-untyped-def]
    return APIClient().generic(
        "POST",
        url or f"/api/v1/runs/{run_id}/report",
        raw,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        **headers,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"ok": false, "errors": ["nul \\u0000 inside"]}', "errors[0]"),
        (b'{"ok": false, "errors": ["lone \\ud800 surrogate"]}', "errors[0]"),
        (
            b'{"ok": true, "steps": [{"name": "a\\u0000", "ok": true, "duration_ms": 1}]}',
            "steps[0].name",
        ),
        (b'{"ok": true, "metrics": {"m": ' + b"9" * 400 + b"}}", "metrics.m"),
        (b"[" * 100000 + b"]" * 100000, "body"),
    ],
)
def test_bodies_the_database_cannot_hold_are_400(raw: bytes, field: str) -> None:
    [run] = running()
    response = post(run.pk, raw)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING


@pytest.mark.django_db
def test_run_ids_beyond_bigint_are_404() -> None:
    assert post(2**70, b'{"ok": true}').status_code == 404


@pytest.mark.django_db
def test_kuberhealthy_nul_is_400() -> None:
    [run] = running()
    ProbeRun.objects.filter(pk=run.pk).update(token_hash=hash_token("kh-uuid"))
    response = post(
        0,
        b'{"ok": false, "errors": ["a\\u0000b"]}',
        url="/api/v1/kuberhealthy/check",
        HTTP_KH_RUN_UUID="kh-uuid",
    )
    assert response.status_code == 400
