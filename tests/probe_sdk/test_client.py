"""probe_sdk against a real HTTP server on 127.0.0.1 that scripts the portal's answers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import probe_sdk
from probe_sdk import client as sdk
from tests.portal import Portal

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def portal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Portal]:
    server = Portal()
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sdk, "_reported", False)
    yield server
    server.stop()


def test_probe_times_steps_and_reports_success_once(portal: Portal) -> None:
    with probe_sdk.Probe() as probe:
        with probe.step("create"):
            pass
        with probe.step("wait"):
            time.sleep(0.02)  # the work being timed, not synchronisation
        probe.metric("pods", 1)
    [sent] = portal.received
    assert sent["path"] == "/api/v1/runs/7/report"
    assert sent["auth"] == "Bearer run-token"
    body = sent["body"]
    assert body["ok"] is True and body["errors"] == []
    assert [s["name"] for s in body["steps"]] == ["create", "wait"]
    assert body["steps"][1]["duration_ms"] >= 20
    assert body["metrics"]["pods"] == 1.0 and "total_ms" in body["metrics"]
    with pytest.raises(probe_sdk.AlreadyReported):
        probe_sdk.report_success()


def test_failing_step_reports_failure_and_reraises(portal: Portal) -> None:
    with pytest.raises(RuntimeError, match="sandbox"), probe_sdk.Probe() as probe:
        with probe.step("create pod"):
            raise RuntimeError("Failed to create pod sandbox")
        with probe.step("never"):
            pass
    body = portal.received[0]["body"]
    assert body["ok"] is False
    assert body["errors"] == ["step create pod failed: RuntimeError: Failed to create pod sandbox"]
    assert [(s["name"], s["ok"]) for s in body["steps"]] == [("create pod", False)]


def test_slow_step_fails_with_measured_time(portal: Portal) -> None:
    with (
        pytest.raises(probe_sdk.StepFailed),
        probe_sdk.Probe() as probe,
        probe.step("slow", threshold_ms=1),
    ):
        time.sleep(0.01)
    step = portal.received[0]["body"]["steps"][0]
    assert step["ok"] is False and "over the 1 ms threshold" in step["error"]


def test_transient_errors_are_retried_until_accepted(portal: Portal) -> None:
    portal.answers = [503, 502, 200]
    probe_sdk.report_failure(["etcd: context deadline exceeded"])
    assert len(portal.received) == 3
    assert all(r["body"]["errors"] == ["etcd: context deadline exceeded"] for r in portal.received)


def test_conflict_means_already_stored_and_is_not_retried(portal: Portal) -> None:
    portal.answers = [409]
    probe_sdk.report_success()
    assert len(portal.received) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 410, 413])
def test_permanent_rejections_raise_without_retry(portal: Portal, status: int) -> None:
    portal.answers = [status]
    with pytest.raises(probe_sdk.ReportRejected) as info:
        probe_sdk.report_success()
    assert info.value.status == status
    assert len(portal.received) == 1


def test_unreachable_portal_gives_up_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk, "_reported", False)
    env = probe_sdk.ProbeEnv(
        report_url="http://127.0.0.1:1/report",
        run_id="1",
        token="t",
        deadline=time.time() + 1.5,
        cluster="",
    )
    started = time.monotonic()
    with pytest.raises(probe_sdk.ReportRejected, match="deadline passed"):
        probe_sdk.report_success(env=env)
    assert time.monotonic() - started < 5


def test_missing_env_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in sdk.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(probe_sdk.ProbeEnvError, match="KUBEPROBE_REPORT_URL"):
        probe_sdk.Probe()
    monkeypatch.setenv("KUBEPROBE_REPORT_URL", "http://x")
    monkeypatch.setenv("KUBEPROBE_RUN_ID", "1")
    monkeypatch.setenv("KUBEPROBE_TOKEN", "t")
    monkeypatch.setenv("KUBEPROBE_DEADLINE", "soon")
    with pytest.raises(probe_sdk.ProbeEnvError, match="unix seconds"):
        probe_sdk.ProbeEnv.from_environ()


def test_success_with_errors_is_refused_locally(portal: Portal) -> None:
    with pytest.raises(ValueError, match="no errors"):
        probe_sdk.report(True, errors=["x"])
    assert portal.received == []


@pytest.mark.parametrize(
    ("args", "code", "ok", "errors"),
    [
        (["success"], 0, True, []),
        (["failure", "disk", "full"], 0, False, ["disk", "full"]),
        (["failure"], 0, False, ["failed (no message given)"]),
    ],
)
def test_cli_reports_from_shell(
    portal: Portal, args: list[str], code: int, ok: bool, errors: list[str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "probe_sdk.cli", *args],
        cwd=ROOT,
        env={**portal.env(), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == code, result.stderr
    assert portal.received[-1]["body"]["ok"] is ok
    assert portal.received[-1]["body"]["errors"] == errors


def test_cli_usage_errors() -> None:
    for args in ([], ["maybe"], ["success", "extra"]):
        result = subprocess.run(
            [sys.executable, "-m", "probe_sdk.cli", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        assert "kubeprobe-report" in result.stderr


def test_reports_are_made_storable_before_sending(portal: Portal) -> None:
    probe_sdk.report_failure(
        ["bad \x00 byte", ""],
        steps=[{"name": "x" * 500, "ok": False, "duration_ms": float("nan"), "error": "e" * 10_000}]
        * 600,
        metrics={"nan": float("nan"), "inf": float("inf"), "fine": 2, "text": "3"},
    )
    body = portal.received[0]["body"]
    assert body["errors"] == ["bad  byte", "(empty message)"]
    assert len(body["steps"]) == 500
    step = body["steps"][0]
    assert len(step["name"]) == 200 and step["duration_ms"] == 0 and len(step["error"]) == 2000
    assert body["metrics"] == {"fine": 2.0, "text": 3.0}


def test_threshold_failure_is_recorded_once(portal: Portal) -> None:
    with (
        pytest.raises(probe_sdk.StepFailed),
        probe_sdk.Probe() as probe,
        probe.step("slow", threshold_ms=0),
    ):
        time.sleep(0.005)
    assert len(portal.received[0]["body"]["errors"]) == 1


def test_steps_timed_elsewhere_are_recorded_and_a_failed_one_fails_the_run(
    portal: Portal,
) -> None:
    with probe_sdk.Probe() as probe:
        probe.record_step("node node-1", True, 812.4)
        probe.record_step("node node-2", False, 120_000, "pod not Ready after 120 s")
        probe.record_step("node node-3", False, 5)
    body = portal.received[0]["body"]
    assert body["ok"] is False
    assert body["steps"] == [
        {"name": "node node-1", "ok": True, "duration_ms": 812, "error": ""},
        {
            "name": "node node-2",
            "ok": False,
            "duration_ms": 120000,
            "error": "pod not Ready after 120 s",
        },
        {"name": "node node-3", "ok": False, "duration_ms": 5, "error": "failed"},
    ]
    assert body["errors"] == [
        "step node node-2 failed: pod not Ready after 120 s",
        "step node node-3 failed: failed",
    ]
