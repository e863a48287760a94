"""/livez, /readyz and /healthz: what each checks, and that /healthz notices a
stopped worker and a stopped beat (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from apps.core import health
from kubeprobe_site.celery import app as celery_app
from kubeprobe_site.queues import queue_names
from tests.runs.test_loop import database_url
from tests.utils import celery_worker, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_health(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees its own Redis client and asks about migrations again."""
    monkeypatch.setattr(health, "_redis", None)
    monkeypatch.setattr(health, "_migrations_applied", False)


@pytest.mark.django_db
def test_readyz_ok_with_database_redis_and_migrations(client: Client, fresh_health: None) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "migrations": "ok"},
    }


@pytest.mark.django_db
def test_readyz_names_redis_when_it_is_down(client: Client, settings, fresh_health: None) -> None:  # type: ignore[no-untyped-def]
    # A port where nothing listens: a real connection refusal, not a mock.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "error: ConnectionError"  # the class, never the URL


@pytest.mark.django_db
def test_readyz_names_unapplied_migrations(client: Client, fresh_health: None) -> None:
    # Forget the newest core migration (rolled back with the test's transaction).
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM django_migrations WHERE id = "
            "(SELECT max(id) FROM django_migrations WHERE app = 'core') RETURNING name"
        )
        (name,) = cursor.fetchone()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["migrations"]
    assert response.json()["checks"]["migrations"].startswith(f"unapplied: core.{name}")


def test_livez_answers_without_touching_dependencies(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/livez")
    assert response.status_code == 200 and response.content == b"ok"


@contextmanager
def celery_beat(env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log_path = tmp_path / "beat.log"
    schedule = str(tmp_path / "beat-schedule")
    command = [sys.executable, "-m", "celery", "-A", "kubeprobe_site", "beat", "-s", schedule]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--loglevel", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            process.terminate()
            process.wait(timeout=20)
            print(log_path.read_text()[-3000:])


def healthz(client: Client) -> tuple[int, dict[str, Any]]:
    response = client.get("/healthz")
    return response.status_code, response.json()


@pytest.mark.django_db(transaction=True)
def test_healthz_names_a_stopped_worker_then_a_stopped_beat(
    client: Client, settings, tmp_path: Path, fresh_health: None
) -> None:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_HEARTBEAT_STALE_SECONDS = 6
    default = celery_app.conf.task_default_queue
    queues = queue_names(default)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_TASK_DEFAULT_QUEUE": default,
        "KUBEPROBE_HEARTBEAT_SECONDS": "1",
    }
    worker_args = ["-Q", ",".join(queues), "--pool", "solo", "--loglevel", "INFO"]
    worker_args += ["--without-mingle", "--without-gossip"]
    # Nothing ran yet: beat and every queue are stale, and named.
    status, body = healthz(client)
    assert status == 503 and set(body["failing"]) >= {"beat", *(f"queue:{q}" for q in queues)}

    with celery_beat(env, tmp_path) as beat:
        with celery_worker(worker_args, env, tmp_path / "worker.log"):
            status, body = wait_for(
                lambda: (answer := healthz(client))[0] == 200 and answer,
                timeout=90,
                interval=0.5,
                what="beat and the worker to record heartbeats",
            )
            assert body["checks"]["beat"] == "ok"
            assert all(body["checks"][f"queue:{q}"] == "ok" for q in queues)

        # The worker stopped: each of its queues goes stale (one by one, as their
        # last heartbeats age), beat does not.
        stale = [f"queue:{q}" for q in queues]
        status, body = wait_for(
            lambda: (answer := healthz(client))[1].get("failing") == stale and answer,
            timeout=30,
            interval=0.5,
            what="/healthz to name every queue of the stopped worker",
        )
        assert status == 503 and body["checks"]["beat"] == "ok"
        assert body["checks"][f"queue:{default}.dispatch"].startswith("stale: last heartbeat ")
        beat.terminate()
        beat.wait(timeout=20)
        wait_for(
            lambda: "beat" in healthz(client)[1].get("failing", []),
            timeout=30,
            interval=0.5,
            what="/healthz to notice the stopped beat",
        )
    celery_app.control.purge()
