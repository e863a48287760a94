"""Kuberhealthy's own published Go check client, unmodified
(github.com/kuberhealthy/kuberhealthy/v3/pkg/checkclient v3.0.0), in a check run as
the command of a `kuberhealthy` template by the local executor: success and failure
both end the run correctly. The check is tests/kuberhealthy_go (a separate Go module).

The Go client accepts KH_REPORTING_URL only when its path is exactly `/check`, as
Kuberhealthy serves it; the portal serves the endpoint there too.
"""

from __future__ import annotations

import os
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.catalog.models import Case, CaseTemplate, RenderConfig, ReportProtocol
from apps.clusters.models import Cluster, Executor
from apps.runs.models import ProbeRun, RunState

CHECK = Path(__file__).resolve().parents[1] / "kuberhealthy_go"


@pytest.fixture(scope="module")
def khcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The check, built from Kuberhealthy's module (GOPATH/GOCACHE keep it after once)."""
    binary = tmp_path_factory.mktemp("khcheck") / "khcheck"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBEPROBE_", "KH_"))}
    subprocess.run(
        ["go", "build", "-trimpath", "-o", str(binary), "."],
        cwd=CHECK,
        env={**env, "CGO_ENABLED": "0"},
        check=True,
        capture_output=True,
        timeout=280,
    )
    return binary


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
def test_kuberhealthys_go_client_reports_success_and_failure(
    khcheck: Path, local_run_dir, live_server, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_PUBLIC_URL = live_server.url
    Cluster.objects.create(name="local", executor=Executor.LOCAL)
    template = CaseTemplate.objects.create(
        name="kh-go",
        image="local",
        command=[str(khcheck)],
        report_protocol=ReportProtocol.KUBERHEALTHY,
        timeout_seconds=60,
    )
    for name, env in (
        ("kh-go-ok", {"KHCHECK_RESULT": "success"}),
        ("kh-go-fail", {"KHCHECK_RESULT": "failure", "KHCHECK_ERRORS": "disk full|node NotReady"}),
    ):
        case = Case.objects.create(name=name, template=template)
        RenderConfig.objects.create(case=case, name=name, env=env)

    call_command(
        "probe",
        "run",
        "kh-go-ok",
        "--cluster",
        "local",
        "--wait",
        "--dispatch-here",
        stdout=StringIO(),
    )
    passed = ProbeRun.objects.get(case__name="kh-go-ok")
    assert passed.state == RunState.SUCCEEDED and passed.ok is True, (
        passed.reason,
        passed.log_tail,
    )
    assert passed.errors == []

    with pytest.raises(CommandError):
        call_command(
            "probe",
            "run",
            "kh-go-fail",
            "--cluster",
            "local",
            "--wait",
            "--dispatch-here",
            stdout=StringIO(),
        )
    failed = ProbeRun.objects.get(case__name="kh-go-fail")
    assert failed.state == RunState.FAILED and failed.ok is False, (failed.reason, failed.log_tail)
    assert failed.errors == ["disk full", "node NotReady"]
