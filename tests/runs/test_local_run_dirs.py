"""The local executor never reads another launch's files as its run's, and never
signals a process it did not start for this run (issue 16: after a database reset,
run ids start again and `var/runs/<id>` held an earlier run's exit code and pids)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db.migrations.recorder import MigrationRecorder

from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import Cluster, Executor
from apps.runs import dispatch
from apps.runs.executors import local
from apps.runs.executors.local import LocalExecutor, run_dir
from apps.runs.models import ProbeRun
from tests.runs.helpers import make_run
from tests.utils import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process this launch did not start, whose pid a stale file names (a group
    leader, as the case processes are, so killing that group would reach it)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    yield process
    process.kill()
    process.wait()


def sleeper(name: str) -> Case:
    template = CaseTemplate.objects.create(
        name=f"{name}-t",
        image="local",
        command=["python", "-c", "import time; time.sleep(60)"],
        timeout_seconds=60,
    )
    return Case.objects.create(name=name, template=template)


def stale_files(directory: Path, pid: int) -> None:
    """What a run of an earlier database (or an earlier attempt) left behind."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "exit_code").write_text("1")
    (directory / "child.pid").write_text(str(pid))
    (directory / "supervisor.pid").write_text(str(pid))
    (directory / "output.log").write_text("old output\n")


def test_each_database_has_its_own_run_folder(local_run_dir: Path) -> None:
    local._database_key.cache_clear()
    before = run_dir(7)
    first = MigrationRecorder.Migration.objects.order_by("pk").first()
    assert first is not None
    # A database made again applies its first migration at another time.
    MigrationRecorder.Migration.objects.filter(pk=first.pk).update(applied="2001-01-01T00:00Z")
    local._database_key.cache_clear()
    try:
        after = run_dir(7)
    finally:
        local._database_key.cache_clear()
    assert before.name == after.name == "7"
    assert before.parent.parent == after.parent.parent == local_run_dir
    assert before != after


def test_a_stale_run_folder_is_not_read_and_its_pids_not_signalled(
    local_run_dir: Path, bystander: subprocess.Popen[bytes]
) -> None:
    cluster = Cluster.objects.create(name="l", executor=Executor.LOCAL)
    run = make_run(sleeper("sleepy"), cluster)
    stale_files(run_dir(run.pk), bystander.pid)
    executor = LocalExecutor()
    assert dispatch.run_dispatch(run_id=run.pk) == "launched"
    run = ProbeRun.objects.get(pk=run.pk)

    status = executor.poll(cluster, [run])[run.pk]
    assert status.phase == "running", status  # not the old exit code 1
    assert "old output" not in executor.logs(cluster, run)
    supervisor = int((run_dir(run.pk) / "supervisor.pid").read_text())
    child = int(wait_for(lambda: _read(run_dir(run.pk) / "child.pid"), what="the child pid"))
    assert bystander.pid not in (supervisor, child)

    executor.cleanup(cluster, run)  # kills this launch's process, nothing else
    assert not run_dir(run.pk).exists()
    wait_for(lambda: not _alive(child), what="the case process to be killed")
    assert bystander.poll() is None


def test_cleanup_of_a_dead_supervisor_signals_nobody(
    local_run_dir: Path, bystander: subprocess.Popen[bytes]
) -> None:
    """The supervisor died without an exit code (killed, host restart) and its pids
    may belong to others now: nothing is signalled, the folder goes."""
    cluster = Cluster.objects.create(name="l", executor=Executor.LOCAL)
    run = make_run(sleeper("gone"), cluster)
    directory = run_dir(run.pk)
    stale_files(directory, bystander.pid)
    (directory / "exit_code").unlink()
    (directory / "lock").write_text("")

    assert LocalExecutor().poll(cluster, [run])[run.pk].phase == "missing"
    LocalExecutor().cleanup(cluster, run)
    assert not directory.exists()
    assert bystander.poll() is None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
