"""The local executor: runs the case command as a process on the worker host.

For the single-machine trial, demos and tests. Whoever can edit a template can
run commands here, so it works only where KUBEPROBE_LOCAL_EXECUTOR_ENABLED is
set. Runs are observed through files under KUBEPROBE_LOCAL_RUN_DIR, so the
reaper must run on the same host as the worker that launched them.

Each database has its own folder there (`<run dir>/<database key>/<run id>/`): run
ids start again at 1 in a new database, and a folder left by an earlier one (with
its `exit_code`) must never be read as the new run's. Whether a run's supervisor
still lives is told by a lock it holds, never by a pid file: the executor signals
only a supervisor holding its run's lock, which is one this executor started.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from apps.clusters.models import LOCAL_EXECUTOR_DISABLED
from apps.clusters.models import Executor as ExecutorKind
from apps.runs.executors.base import Executor, ExecutorError, LaunchSpec, RunStatus, register

if TYPE_CHECKING:
    from apps.clusters.models import Cluster
    from apps.runs.models import ProbeRun

SUPERVISOR = Path(__file__).with_name("_local_supervisor.py")
# The worker's own env holds secrets (database URL, keys): pass only these.
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE")


@functools.cache
def _database_key(name: str) -> str:
    """A short key of this database: when its first migration was applied, which a
    database made again (a reset, a new install) does not share."""
    first = (
        MigrationRecorder(connection)
        .migration_qs.order_by("pk")
        .values_list("applied", flat=True)
        .first()
    )
    return "db-" + hashlib.sha256(f"{name}|{first}".encode()).hexdigest()[:12]


def runs_root() -> Path:
    """This database's folder of local runs."""
    key = _database_key(str(connection.settings_dict["NAME"]))
    return Path(settings.KUBEPROBE_LOCAL_RUN_DIR) / key


def run_dir(run_id: int) -> Path:
    return runs_root() / str(run_id)


def _supervised(directory: Path) -> bool:
    """Whether the run's supervisor is alive: it holds the run's lock until it ends."""
    try:
        fd = os.open(directory / "lock", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also drops the lock if we took it
    return False


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open(errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except FileNotFoundError:
        return ""


@register
class LocalExecutor(Executor):
    name = ExecutorKind.LOCAL

    def launch(self, cluster: Cluster, spec: LaunchSpec) -> str:
        if not settings.KUBEPROBE_LOCAL_EXECUTOR_ENABLED:
            raise ExecutorError(LOCAL_EXECUTOR_DISABLED)
        command = [*spec.command, *spec.args]
        if not command:
            raise ExecutorError("The case's template has no command to run.")
        if command[0] in ("python", "python3"):
            command[0] = sys.executable  # the portal's interpreter, which has probe_sdk
        directory = run_dir(spec.run_id)
        if directory.exists():
            if _supervised(directory):
                raise ExecutorError(f"A process of run {spec.run_id} still runs in {directory}.")
            shutil.rmtree(directory)  # an earlier attempt's files: never read as this one's
        directory.mkdir(parents=True)
        lock = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Killed well after the deadline, so the reaper first closes the run as timed out.
        kill_after = spec.timeout_seconds + settings.KUBEPROBE_REPORT_GRACE_SECONDS + 30
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env["PYTHONPATH"] = str(settings.BASE_DIR)
        env.update(spec.env)
        process = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                str(SUPERVISOR),
                str(directory),
                str(kill_after),
                str(lock),
                "--",
                *command,
            ],
            env=env,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            pass_fds=(lock,),  # the supervisor holds the lock from here on
        )
        os.close(lock)
        # Reap the supervisor when it ends so it leaves no zombie in the worker.
        threading.Thread(target=process.wait, daemon=True).start()
        (directory / "supervisor.pid").write_text(str(process.pid))
        return f"pid {process.pid}"

    def poll(self, cluster: Cluster, runs: list[ProbeRun]) -> dict[int, RunStatus]:
        return {run.pk: self._status(run) for run in runs}

    def _status(self, run: ProbeRun) -> RunStatus:
        directory = run_dir(run.pk)
        exit_file = directory / "exit_code"
        if exit_file.exists():
            code = int(exit_file.read_text() or "1")
            if code == 0:
                return RunStatus("succeeded", details={"exit_code": 0})
            return RunStatus(
                "failed",
                reason=f"process exited with code {code}",
                failed_early=True,
                details={"exit_code": code},
            )
        if not (directory / "lock").exists():
            return RunStatus("missing", reason="no process was started on this host")
        if _supervised(directory):
            return RunStatus("running")
        return RunStatus("missing", reason="the process vanished without an exit code")

    def logs(self, cluster: Cluster, run: ProbeRun, tail_lines: int = 50) -> str:
        return _tail(run_dir(run.pk) / "output.log", tail_lines)

    def cleanup(self, cluster: Cluster, run: ProbeRun) -> None:
        directory = run_dir(run.pk)
        if not (directory / "exit_code").exists() and _supervised(directory):
            # Only a live supervisor of this run holds its lock: its pid is current.
            with contextlib.suppress(OSError, ValueError):
                os.kill(int((directory / "supervisor.pid").read_text()), signal.SIGTERM)
        shutil.rmtree(directory, ignore_errors=True)

    def managed_handles(self, cluster: Cluster) -> dict[int, str]:
        root = runs_root()
        if not root.is_dir():
            return {}
        return {int(p.name): f"dir {p}" for p in root.iterdir() if p.name.isdigit()}
