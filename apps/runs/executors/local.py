"""The local executor: runs the case command as a process on the worker host.

For the single-machine trial, demos and tests. Whoever can edit a template can
run commands here, so it works only where KUBEPROBE_LOCAL_EXECUTOR_ENABLED is
set. Runs are observed through files under KUBEPROBE_LOCAL_RUN_DIR, so the
reaper must run on the same host as the worker that launched them.
"""

from __future__ import annotations

import contextlib
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

from apps.clusters.models import LOCAL_EXECUTOR_DISABLED
from apps.clusters.models import Executor as ExecutorKind
from apps.runs.executors.base import Executor, ExecutorError, LaunchSpec, RunStatus, register

if TYPE_CHECKING:
    from apps.clusters.models import Cluster
    from apps.runs.models import ProbeRun

SUPERVISOR = Path(__file__).with_name("_local_supervisor.py")
# The worker's own env holds secrets (database URL, keys): pass only these.
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE")


def run_dir(run_id: int) -> Path:
    return Path(settings.KUBEPROBE_LOCAL_RUN_DIR) / str(run_id)


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open(errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except FileNotFoundError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        directory.mkdir(parents=True, exist_ok=True)
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
        )
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
        pid_file = directory / "supervisor.pid"
        if not pid_file.exists():
            return RunStatus("missing", reason="no process was started on this host")
        if _alive(int(pid_file.read_text())):
            return RunStatus("running")
        return RunStatus("missing", reason="the process vanished without an exit code")

    def logs(self, cluster: Cluster, run: ProbeRun, tail_lines: int = 50) -> str:
        return _tail(run_dir(run.pk) / "output.log", tail_lines)

    def cleanup(self, cluster: Cluster, run: ProbeRun) -> None:
        directory = run_dir(run.pk)
        child = directory / "child.pid"
        if child.exists() and not (directory / "exit_code").exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(child.read_text()), signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)

    def managed_handles(self, cluster: Cluster) -> dict[int, str]:
        root = Path(settings.KUBEPROBE_LOCAL_RUN_DIR)
        if not root.is_dir():
            return {}
        return {int(p.name): f"dir {p}" for p in root.iterdir() if p.name.isdigit()}
