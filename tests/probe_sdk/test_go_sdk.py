"""The Go SDK (probe_sdk/go, module kubeprobe.dev/probe-sdk): its `go test` suite, one
test of which reports a real run to a live portal over HTTP, and the example Go case
built by the probe image's Makefile and run by the local executor."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.catalog.models import Case, CaseTemplate, RenderConfig
from apps.clusters.models import Cluster, Executor
from apps.core.crypto import hash_token
from apps.runs.dispatch import run_contract_env
from apps.runs.models import ProbeRun, RunState
from apps.runs.tokens import run_token
from tests.runs.helpers import make_run

ROOT = Path(__file__).resolve().parents[2]
GO_SDK = ROOT / "probe_sdk" / "go"


def go_env(**extra: str) -> dict[str, str]:
    """The caller's Go setup (caches persist in GOPATH/GOCACHE), no KubeProbe env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBEPROBE_", "KH_"))}
    return {**env, "CGO_ENABLED": "0", **extra}


@pytest.mark.timeout(240)
@pytest.mark.django_db(transaction=True)
def test_go_test_passes_and_reports_a_real_run(live_server, settings) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_PUBLIC_URL = live_server.url
    cluster = Cluster.objects.create(name="go-cluster", executor=Executor.LOCAL)
    template = CaseTemplate.objects.create(name="go-t", image="local", command=["true"])
    run = make_run(Case.objects.create(name="go-case", template=template), cluster)
    # The run as a dispatch leaves it: running, with its token and deadline.
    token, deadline = run_token(run_id=run.pk), timezone.now() + timedelta(minutes=3)
    ProbeRun.objects.filter(pk=run.pk).update(
        state=RunState.RUNNING,
        token_hash=hash_token(token),
        deadline=deadline,
        dispatched_at=timezone.now(),
    )
    env = run_contract_env(run=run, token=token, deadline=deadline)
    assert env["KUBEPROBE_REPORT_URL"].startswith(live_server.url)

    result = subprocess.run(
        ["go", "test", "-count=1", "-v", "./..."],
        cwd=GO_SDK,
        env=go_env(KPCLIENT_LIVE_TEST="1", **env),
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "--- PASS: TestLivePortal" in output, output[-4000:]
    assert "--- PASS: TestTransientAnswersAreRetriedUntilAccepted" in output

    run.refresh_from_db()
    assert run.state == RunState.FAILED and run.ok is False
    assert run.errors == ["step write failed: quota exceeded"]
    assert [(s["name"], s["ok"], s.get("error", "")) for s in run.steps] == [
        ("connect", True, ""),
        ("write", False, "quota exceeded"),
    ]
    assert run.metrics["objects"] == 2 and "total_ms" in run.metrics


@pytest.fixture(scope="module")
def go_cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example Go cases, built as the probe image's Makefile builds them."""
    out = tmp_path_factory.mktemp("go-cases")
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "deploy" / "probe-image"), "go-cases", f"GO_OUT={out}"],
        env=go_env(),
        check=True,
        capture_output=True,
        timeout=200,
    )
    return out


@pytest.mark.timeout(240)
@pytest.mark.django_db(transaction=True)
def test_the_example_go_case_runs_as_a_local_case(
    go_cases: Path, local_run_dir, live_server, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_PUBLIC_URL = live_server.url
    Cluster.objects.create(name="local", executor=Executor.LOCAL)
    template = CaseTemplate.objects.create(
        name="httpcheck", image="local", command=[str(go_cases / "httpcheck")], timeout_seconds=60
    )
    Case.objects.create(name="portal-livez", template=template)  # default: the portal's /livez
    broken = Case.objects.create(name="portal-204", template=template)
    RenderConfig.objects.create(case=broken, name="204", env={"HTTPCHECK_EXPECT_STATUS": "204"})

    out = StringIO()
    call_command(
        "probe",
        "run",
        "portal-livez",
        "--cluster",
        "local",
        "--wait",
        "--dispatch-here",
        stdout=out,
    )
    passed = ProbeRun.objects.get(case__name="portal-livez")
    assert passed.state == RunState.SUCCEEDED, (passed.reason, passed.log_tail)
    assert [s["name"] for s in passed.steps] == [f"GET {live_server.url}/livez", "status"]
    assert passed.metrics["status"] == 200 and passed.metrics["latency_ms"] >= 0

    with pytest.raises(CommandError):
        call_command(
            "probe",
            "run",
            "portal-204",
            "--cluster",
            "local",
            "--wait",
            "--dispatch-here",
            stdout=StringIO(),
        )
    failed = ProbeRun.objects.get(case__name="portal-204")
    assert failed.state == RunState.FAILED
    assert failed.errors == ["step status failed: got HTTP 200, want 204"]
