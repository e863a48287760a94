from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from tests.kube import kube, kube_ns  # noqa: F401  (fixtures: the real control plane)


def pytest_configure(config: pytest.Config) -> None:
    """Build the translations' .mo files (as `make install` does) before any page is
    rendered, so a run straight after editing a .po file tests the new strings."""
    from kubeprobe_site.locale_build import catalogs_compile

    catalogs_compile()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """One test database per pytest process, so concurrent runs never collide."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    base = db.get("TEST", {}).get("NAME") or f"test_{db['NAME']}"
    db.setdefault("TEST", {})["NAME"] = f"{base}_{os.getpid()}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    """pytest-django's, and before it drops the test database, end the sessions that
    other processes (daphne, Celery workers, probes a test started) may still hold on
    it: otherwise DROP DATABASE fails and the database is left behind."""
    yield
    from django.conf import settings
    from django.db import connection, connections

    db = settings.DATABASES["default"]
    name = connection.settings_dict["NAME"]
    if connection.vendor != "postgresql" or not str(name).startswith("test_"):
        return
    import psycopg

    connections.close_all()
    try:
        with psycopg.connect(
            dbname="postgres",
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=db.get("PORT") or None,
            autocommit=True,
        ) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
    except psycopg.Error:
        pass  # best effort: pytest-django's own drop still runs and reports


@pytest.fixture(scope="session", autouse=True)
def _own_celery_queue() -> Iterator[None]:
    """Tasks enqueued by this test process go to a queue no other run shares."""
    from kubeprobe_site.celery import app
    from kubeprobe_site.queues import kombu_queues

    app.conf.task_default_queue = f"kubeprobe-test-{os.getpid()}"
    # Its dispatch, alerts and housekeeping queues too (purged below).
    app.conf.task_queues = kombu_queues(app.conf.task_default_queue)
    yield
    app.control.purge()


@pytest.fixture(autouse=True)
def _default_language_after_each_test() -> Iterator[None]:
    """A test client request under Accept-Language activates that language for the thread
    (LocaleMiddleware never deactivates it); the next test starts in the default again."""
    yield
    from django.utils import translation

    translation.deactivate()


@pytest.fixture
def local_run_dir(tmp_path, settings):  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_LOCAL_RUN_DIR = tmp_path / "runs"
    settings.KUBEPROBE_LOCAL_EXECUTOR_ENABLED = True
    return settings.KUBEPROBE_LOCAL_RUN_DIR


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    """A staff user in one of the built-in roles (admin, operator, viewer)."""

    def make(role: str, username: str | None = None) -> User:
        user = User.objects.create_user(
            username=username or f"{role}-user", password="pw-For-tests-1", is_staff=True
        )
        user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def api_client_for(make_user: Callable[..., User]) -> Callable[[str], APIClient]:
    def make(role: str) -> APIClient:
        client = APIClient()
        client.force_authenticate(make_user(role))
        return client

    return make


@pytest.fixture
def admin_api(api_client_for: Callable[[str], APIClient]) -> APIClient:
    return api_client_for("admin")
