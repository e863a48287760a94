"""The local executor and `manage.py probe run` with real subprocesses and a live server."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import LOCAL_EXECUTOR_DISABLED as DISABLED_MESSAGE
from apps.clusters.models import Cluster, Executor
from apps.runs import dispatch, reaping
from apps.runs.executors.local import LocalExecutor
from apps.runs.models import ProbeRun, RunState
from tests.runs.helpers import make_run
from tests.utils import wait_for


def local_case(name: str, command: list[str], timeout: int = 30) -> Case:
    template = CaseTemplate.objects.create(
        name=f"{name}-t", image="local", command=command, timeout_seconds=timeout
    )
    return Case.objects.create(name=name, template=template)


@pytest.mark.django_db
def test_local_executor_is_refused_unless_enabled(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_LOCAL_EXECUTOR_ENABLED = False
    settings.KUBEPROBE_LOCAL_RUN_DIR = tmp_path
    run = make_run(
        local_case("x", ["python", "-c", "print(1)"]),
        Cluster.objects.create(name="l", executor=Executor.LOCAL),
    )
    assert dispatch.run_dispatch(run_id=run.pk) == "error"
    run.refresh_from_db()
    assert run.state == RunState.ERROR and run.reason == DISABLED_MESSAGE
    assert not any(tmp_path.iterdir())  # nothing was started


@pytest.mark.django_db
def test_local_cases_get_the_contract_but_not_the_workers_secrets(
    local_run_dir, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_PASSWORD_FOR_TEST", "do-not-leak")
    script = "import os,json; print(json.dumps(sorted(os.environ)))"
    run = make_run(
        local_case("env", ["python", "-c", script]),
        Cluster.objects.create(name="l", executor=Executor.LOCAL),
    )
    dispatch.run_dispatch(run_id=run.pk)
    run.refresh_from_db()

    def output() -> str:
        text = LocalExecutor().logs(run.cluster, run)
        return text if "KUBEPROBE_TOKEN" in text else ""

    output = wait_for(output, what="the case's output")
    assert "KUBEPROBE_REPORT_URL" in output and "KUBEPROBE_DEADLINE" in output
    assert "DATABASE_PASSWORD_FOR_TEST" not in output
    assert "SECRET_KEY" not in output and "DATABASE_URL" not in output


@pytest.mark.django_db
def test_local_process_that_exits_without_reporting_is_an_error(local_run_dir) -> None:  # type: ignore[no-untyped-def]
    cluster = Cluster.objects.create(name="l", executor=Executor.LOCAL)
    run = make_run(
        local_case("crash", ["python", "-c", "import sys; print('boom'); sys.exit(3)"]), cluster
    )
    dispatch.run_dispatch(run_id=run.pk)

    def closed() -> bool:
        reaping.runs_reap_cluster(cluster_id=cluster.pk)
        return ProbeRun.objects.get(pk=run.pk).state != RunState.RUNNING

    wait_for(closed, what="the reaper to see the exit")
    run.refresh_from_db()
    assert run.state == RunState.ERROR
    assert run.reason == "process exited with code 3"
    assert "boom" in run.log_tail


@pytest.mark.django_db
def test_unknown_command_is_reported(local_run_dir) -> None:  # type: ignore[no-untyped-def]
    cluster = Cluster.objects.create(name="l", executor=Executor.LOCAL)
    run = make_run(local_case("nope", ["/no/such/binary"]), cluster)
    dispatch.run_dispatch(run_id=run.pk)

    def closed() -> bool:
        reaping.runs_reap_cluster(cluster_id=cluster.pk)
        return ProbeRun.objects.get(pk=run.pk).state == RunState.ERROR

    wait_for(closed)
    run.refresh_from_db()
    assert "code 127" in run.reason and "cannot start '/no/such/binary'" in run.log_tail


@pytest.mark.django_db(transaction=True)
def test_probe_command_waits_prints_steps_and_exits_by_result(
    local_run_dir, live_server, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_PUBLIC_URL = live_server.url
    Cluster.objects.create(name="local", executor=Executor.LOCAL)
    local_case("passing", ["python", "-m", "tests.runs.cases.passing"])
    local_case("failing", ["python", "-m", "tests.runs.cases.failing"])
    out = StringIO()
    call_command(
        "probe", "run", "passing", "--cluster", "local", "--wait", "--dispatch-here", stdout=out
    )
    text = out.getvalue()
    assert "[ok  ] create object" in text and "[ok  ] read it back" in text
    assert "succeeded" in text
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command(
            "probe", "run", "failing", "--cluster", "local", "--wait", "--dispatch-here", stdout=out
        )
    assert info.value.returncode == 1 and "ended failed" in str(info.value)
    assert "[FAIL] wait pod ready" in out.getvalue()
    assert "Failed to create pod sandbox" in out.getvalue()


@pytest.mark.django_db
def test_probe_command_names_unknown_case_and_cluster() -> None:
    with pytest.raises(CommandError, match="No case named 'ghost'"):
        call_command("probe", "run", "ghost", "--cluster", "x")


@pytest.mark.django_db
@pytest.mark.parametrize("enabled", [False, True])
def test_admin_warns_about_local_clusters_when_the_executor_is_off(
    client, make_user, settings, enabled: bool
) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_LOCAL_EXECUTOR_ENABLED = enabled
    cluster = Cluster.objects.create(name="trial", executor=Executor.LOCAL)
    client.force_login(make_user("admin"))
    for url in ("/admin/clusters/cluster/", f"/admin/clusters/cluster/{cluster.pk}/change/"):
        page = client.get(url).content.decode()
        assert ("Local clusters will not run" in page) is not enabled
