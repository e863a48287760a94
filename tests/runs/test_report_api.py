"""Every answer of the report endpoints, KubeProbe's and Kuberhealthy's."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.crypto import hash_token
from apps.runs.models import ProbeRun, RunState
from tests.factories import ClusterFactory
from tests.runs.helpers import make_case, make_run

pytestmark = pytest.mark.django_db
TOKEN = "run-token-0123456789"


@pytest.fixture
def run() -> ProbeRun:
    """A dispatched run whose token is TOKEN."""
    made = make_run(make_case(), ClusterFactory())
    ProbeRun.objects.filter(pk=made.pk).update(
        state=RunState.RUNNING,
        token_hash=hash_token(TOKEN),
        dispatched_at=timezone.now(),
        deadline=timezone.now() + timedelta(seconds=60),
    )
    return ProbeRun.objects.get(pk=made.pk)


def post(
    run_id: int, body: Any, token: str | None = TOKEN, raw: bytes | None = None, **extra: Any
) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    data = raw if raw is not None else json.dumps(body).encode()
    return APIClient().generic(
        "POST",
        f"/api/v1/runs/{run_id}/report",
        data,
        content_type="application/json",
        **headers,
        **extra,
    )


GOOD = {
    "ok": False,
    "errors": ["StatefulSet probe failed: Failed to create pod sandbox: rpc error: code = Unknown"],
    "steps": [
        {"name": "create", "ok": True, "duration_ms": 120},
        {"name": "wait ready", "ok": False, "duration_ms": 30000.5, "error": "timed out"},
    ],
    "metrics": {"create_ms": 120, "ratio": 0.5},
}


def test_200_stores_the_result_in_one_go(run: ProbeRun) -> None:
    response = post(run.pk, GOOD)
    assert response.status_code == 200
    assert response.json() == {"id": run.pk, "state": "failed"}
    run.refresh_from_db()
    assert run.state == RunState.FAILED and run.ok is False
    assert run.errors == GOOD["errors"]
    assert [s["name"] for s in run.steps] == ["create", "wait ready"]
    assert run.steps[1]["error"] == "timed out"
    assert run.metrics == {"create_ms": 120, "ratio": 0.5}
    assert run.finished_at is not None and run.duration_ms is not None


def test_200_success_and_signals_after_commit(
    run: ProbeRun, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    from apps.runs.signals import run_finished

    seen: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        seen.append(kwargs)

    run_finished.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert (
                post(
                    run.pk, {"ok": True, "steps": [{"name": "put", "ok": True, "duration_ms": 3}]}
                ).status_code
                == 200
            )
        assert seen == []  # nothing before the commit
        for callback in callbacks:
            callback()
    finally:
        run_finished.disconnect(receiver)
    assert (
        seen
        and seen[0]["run_id"] == run.pk
        and seen[0]["state"] == "succeeded"
        and seen[0]["ok"] is True
    )


@pytest.mark.parametrize("token", [None, "", "wrong-token", TOKEN + "x"])
def test_401_for_missing_or_wrong_token(run: ProbeRun, token: str | None) -> None:
    response = post(run.pk, {"ok": True}, token=token)
    assert response.status_code == 401
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING


def test_401_for_a_token_with_another_scheme(run: ProbeRun) -> None:
    response = APIClient().post(
        f"/api/v1/runs/{run.pk}/report",
        {"ok": True},
        format="json",
        HTTP_AUTHORIZATION=f"Token {TOKEN}",
    )
    assert response.status_code == 401


def test_404_for_an_unknown_run() -> None:
    assert post(424242, {"ok": True}).status_code == 404


def test_409_when_already_finished_and_the_first_result_stays(run: ProbeRun) -> None:
    assert post(run.pk, GOOD).status_code == 200
    second = post(run.pk, {"ok": True})
    assert second.status_code == 409
    assert "already finished" in second.json()["detail"]
    run.refresh_from_db()
    assert run.state == RunState.FAILED and run.errors == GOOD["errors"]


def test_410_after_the_deadline(run: ProbeRun, settings) -> None:  # type: ignore[no-untyped-def]
    past = timezone.now() - timedelta(seconds=settings.KUBEPROBE_REPORT_GRACE_SECONDS + 1)
    ProbeRun.objects.filter(pk=run.pk).update(deadline=past)
    response = post(run.pk, {"ok": True})
    assert response.status_code == 410
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING


def test_within_the_grace_after_the_deadline_is_still_taken(run: ProbeRun) -> None:
    ProbeRun.objects.filter(pk=run.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    assert post(run.pk, {"ok": True}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ok": True, "errors": ["but why"]}, "errors"),
        ({"ok": False}, "errors"),
        ({"ok": False, "errors": []}, "errors"),
        ({"ok": "yes"}, "ok"),
        ({"errors": ["x"]}, "ok"),
        ({"ok": False, "errors": "x"}, "errors"),
        ({"ok": False, "errors": [""]}, "errors[0]"),
        ({"ok": True, "steps": {"name": "x"}}, "steps"),
        (
            {"ok": True, "steps": [{"name": "x", "ok": True, "duration_ms": -1}]},
            "steps[0].duration_ms",
        ),
        (
            {"ok": True, "steps": [{"name": "x", "ok": True, "duration_ms": True}]},
            "steps[0].duration_ms",
        ),
        ({"ok": True, "steps": [{"name": "", "ok": True, "duration_ms": 1}]}, "steps[0].name"),
        ({"ok": True, "steps": [{"name": "x", "ok": "y", "duration_ms": 1}]}, "steps[0].ok"),
        (
            {"ok": True, "steps": [{"name": "x", "ok": True, "duration_ms": 1, "error": 5}]},
            "steps[0].error",
        ),
        ({"ok": True, "metrics": {"a": "fast"}}, "metrics.a"),
        ({"ok": True, "metrics": [1]}, "metrics"),
        ({"ok": True, "eror": []}, "body"),
        ([True], "body"),
    ],
)
def test_400_names_the_field(run: ProbeRun, body: Any, field: str) -> None:
    response = post(run.pk, body)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING


def test_400_for_a_body_that_is_not_json(run: ProbeRun) -> None:
    response = post(run.pk, None, raw=b"{ok: true")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["body"]


def test_413_over_256_kib(run: ProbeRun) -> None:
    big = {"ok": False, "errors": ["x" * 1000] * 300}
    response = post(run.pk, big)
    assert response.status_code == 413
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.RUNNING


# ---------------------------------------------------------------- Kuberhealthy


UUID = "3f1c6a52-9c1e-4a7e-8d7c-6f0f0f0f0f0f"


@pytest.fixture
def kh_run(run: ProbeRun) -> ProbeRun:
    ProbeRun.objects.filter(pk=run.pk).update(token_hash=hash_token(UUID))
    return ProbeRun.objects.get(pk=run.pk)


def kh_post(body: Any, uuid: str | None = UUID, content_type: str = "application/json") -> Any:
    headers = {"HTTP_KH_RUN_UUID": uuid} if uuid is not None else {}
    return APIClient().generic(
        "POST",
        "/api/v1/kuberhealthy/check",
        json.dumps(body).encode(),
        content_type=content_type,
        **headers,
    )


def test_kuberhealthy_report_as_its_go_client_sends_it(kh_run: ProbeRun) -> None:
    # checkclient.ReportFailure marshals {"ok": false, "errors": [...]} with header kh-run-uuid.
    response = kh_post({"ok": False, "errors": ["deployment never became ready"]})
    assert response.status_code == 200
    assert response.content == b""
    kh_run.refresh_from_db()
    assert kh_run.state == RunState.FAILED and kh_run.errors == ["deployment never became ready"]


def test_kuberhealthy_keys_are_matched_case_insensitively(kh_run: ProbeRun) -> None:
    assert kh_post({"OK": True, "Errors": []}).status_code == 200
    assert ProbeRun.objects.get(pk=kh_run.pk).state == RunState.SUCCEEDED


@pytest.mark.parametrize(
    ("body", "uuid", "content_type", "status"),
    [
        ({"ok": True, "errors": []}, None, "application/json", 400),
        ({"ok": True, "errors": []}, "not-a-known-uuid", "application/json", 400),
        ({"ok": True, "errors": ["x"]}, UUID, "application/json", 400),
        ({"ok": False, "errors": []}, UUID, "application/json", 400),
        ({"ok": False, "errors": [""]}, UUID, "application/json", 400),
        ({"ok": True, "errors": []}, UUID, "text/plain", 415),
    ],
)
def test_kuberhealthy_status_codes(
    kh_run: ProbeRun, body: Any, uuid: str | None, content_type: str, status: int
) -> None:
    assert kh_post(body, uuid, content_type).status_code == status
    assert ProbeRun.objects.get(pk=kh_run.pk).state == RunState.RUNNING


def test_kuberhealthy_used_uuid_is_400_and_late_report_410(kh_run: ProbeRun, settings) -> None:  # type: ignore[no-untyped-def]
    assert kh_post({"ok": True, "errors": []}).status_code == 200
    assert kh_post({"ok": True, "errors": []}).status_code == 400
    other = make_run(make_case(), ClusterFactory())
    late = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    ProbeRun.objects.filter(pk=other.pk).update(
        state=RunState.RUNNING,
        token_hash=hash_token(late),
        deadline=timezone.now() - timedelta(seconds=settings.KUBEPROBE_REPORT_GRACE_SECONDS + 5),
    )
    assert kh_post({"ok": True, "errors": []}, uuid=late).status_code == 410


def test_kuberhealthy_get_is_405() -> None:
    assert APIClient().get("/api/v1/kuberhealthy/check").status_code == 405
