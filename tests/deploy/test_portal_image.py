"""The portal image (deploy/portal-image): Docker cannot build here, so its build
is replayed: every COPY source exists and is not ignored, `pip install .` works
in a clean venv, collectstatic runs as the Dockerfile runs it, and each
process's command resolves there. gunicorn's config (multiprocess metrics) is
run for real."""

from __future__ import annotations

import fnmatch
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.runs.test_loop import database_url
from tests.utils import wait_for

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "deploy" / "portal-image"
DOCKERFILE = (IMAGE / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def context_copies() -> list[tuple[str, str]]:
    """(source in the context, destination) of every COPY from the build context."""
    copies = []
    for op, args in instructions():
        if op == "COPY" and not args.startswith("--from"):
            *sources, destination = args.split()
            copies += [(source, destination) for source in sources]
    return copies


def ignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (IMAGE / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(
        fnmatch.fnmatch(path, pattern) or path.startswith(pattern.rstrip("/") + "/")
        for pattern in patterns
    )


def test_every_copy_source_exists_and_is_not_ignored() -> None:
    copies = context_copies()
    sources = {source for source, _ in copies}
    assert {"pyproject.toml", "apps", "kubeprobe_site", "manage.py", "templates"} <= sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source), f"{source} is copied but .dockerignore'd"
    # Everything the package and Django need at run time is copied.
    assert {"static", "probe_sdk", "README.md"} <= sources  # README: pyproject's readme


def test_runs_as_non_root_with_the_web_server_by_default() -> None:
    ops = instructions()
    final_stage = ops[max(i for i, (op, _) in enumerate(ops) if op == "FROM") :]
    assert ("USER", "10001") in final_stage
    assert ("CMD", '["gunicorn", "kubeprobe_site.wsgi:application"]') in final_stage
    env = " ".join(args for op, args in final_stage if op == "ENV")
    assert "KUBEPROBE_VAR_DIR=/tmp/" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    # Two stages: the final one takes the venv and the app from the build stage only.
    assert [args.split()[0] for op, args in final_stage if op == "COPY"] == ["--from=build"] * 2


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The build stage replayed: the COPYs into /opt/kubeprobe's stand-in, `pip
    install .` into a clean venv, collectstatic as the Dockerfile runs it."""
    tmp = tmp_path_factory.mktemp("portal-image")
    app = tmp / "opt-kubeprobe"
    app.mkdir()
    for source, destination in context_copies():
        into_folder = destination.endswith("/")
        target = app / destination / Path(source).name if into_folder else app / destination
        if (ROOT / source).is_dir():
            # As the .dockerignore: no bytecode, no .mo files built on this machine.
            skip = shutil.ignore_patterns("__pycache__", "*.mo")
            shutil.copytree(ROOT / source, target, ignore=skip)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, target)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", "."],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    collect = run_in(venv, app, ["python", "manage.py", "collectstatic", "--noinput"])
    assert collect.returncode == 0, collect.stderr[-3000:]
    compiled = run_in(venv, app, ["python", "-m", "kubeprobe_site.locale_build"])
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    return venv, app


def image_env(venv: Path, app: Path) -> dict[str, str]:
    """The final stage's ENV, with the build step's throwaway keys."""
    return {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "PYTHONPATH": str(app),
        "HOME": str(app.parent),
        "STATIC_ROOT": str(app / "staticfiles"),
        "KUBEPROBE_VAR_DIR": str(app.parent / "var"),
        "SECRET_KEY": "collectstatic-only-not-a-secret-0123456789abcdefghijklmnop",
        "KUBEPROBE_ENCRYPTION_KEY": "kTl4gWAX8Qp4NUS7vjUWRFDiRZPp6fz0mPnuV3Gq-dE=",
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1/x"),
    }


def run_in(venv: Path, app: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=app,
        env=image_env(venv, app),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_chinese_catalogs_are_compiled_in_the_image(built: tuple[Path, Path]) -> None:
    """Babel (a dependency) builds the .mo files; no GNU gettext in the image."""
    venv, app = built
    for po in [
        *app.glob("locale/*/LC_MESSAGES/*.po"),
        *app.glob("apps/*/locale/*/LC_MESSAGES/*.po"),
    ]:
        assert po.with_suffix(".mo").is_file(), po
    assert (app / "locale/zh_Hans/LC_MESSAGES/django.mo").is_file()
    check = run_in(
        venv,
        app,
        [
            "python",
            "-c",
            "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'kubeprobe_site.settings'; "
            "django.setup(); from django.utils import translation; "
            "translation.activate('zh-hans'); print(translation.gettext('Overview'))",
        ],
    )
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.strip() == "总览"


def test_collectstatic_made_the_hashed_manifest(built: tuple[Path, Path]) -> None:
    _, app = built
    manifest = app / "staticfiles" / "staticfiles.json"
    assert manifest.is_file() and "dashboard/" in manifest.read_text()
    assert list((app / "staticfiles").rglob("*.gz"))  # compressed for whitenoise


@pytest.mark.parametrize(
    "command",
    [
        ["gunicorn", "--check-config", "kubeprobe_site.wsgi:application"],
        ["daphne", "--help"],
        ["python", "-c", "import kubeprobe_site.asgi"],
        ["celery", "-A", "kubeprobe_site", "report"],
        ["python", "manage.py", "watch_clusters", "--help"],
        ["python", "manage.py", "migrate", "--help"],
        ["python", "manage.py", "check"],
    ],
    ids=lambda command: " ".join(command[:3]),
)
def test_each_process_command_resolves_in_the_clean_venv(
    built: tuple[Path, Path], command: list[str]
) -> None:
    venv, app = built
    done = run_in(venv, app, command)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    if command[0] == "celery":
        # The worker and beat find their tasks and the scheduler with the heartbeat.
        assert "apps.core.beat:Scheduler" in done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.django_db(transaction=True)
def test_gunicorn_config_sums_metrics_over_its_worker_processes(tmp_path: Path) -> None:
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left over by a previous container")
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "3",
        "GUNICORN_THREADS": "1",
        "GUNICORN_WORKER_TMP_DIR": str(tmp_path),
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    config = str(IMAGE / "gunicorn.conf.py")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", config, "kubeprobe_site.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def request(method: str, path: str, body: bytes | None = None) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            connection.request(method, path, body=body)
            return connection.getresponse().status
        except ConnectionRefusedError:
            return 0  # not listening yet
        finally:
            connection.close()

    try:
        # Up (not a report: nothing counted yet).
        wait_for(lambda: request("GET", "/livez") == 200, timeout=120, interval=0.2)
        for _ in range(30):
            # An invalid body: refused (400) before the database is asked. A new
            # connection each: spread over the workers.
            assert request("POST", "/api/v1/runs/999999999/report", b"{}") == 400
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        print((tmp_path / "gunicorn.log").read_text()[-3000:])
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples["kubeprobe_reports_total", (("code", "400"), ("protocol", "kubeprobe"))] == 30
    # Each worker keeps its own file; the stale one from before start-up is gone.
    assert len(list(metrics_dir.glob("counter_*.db"))) >= 1
    assert not (metrics_dir / "counter_1.db").exists()
