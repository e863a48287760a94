"""What /readyz and /healthz check (views in apps/core/views.py).

Every check answers "ok" or a short reason. Reasons never carry exception
messages (they can hold connection strings), only the exception's class.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.core.heartbeat import beat_name, heartbeat_ages, installation_queues

OK = "ok"

_redis: redis.Redis | None = None
# Applied migrations stay applied for this process's code: once seen, not asked again.
_migrations_applied = False


def _redis_client() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
    return _redis


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return OK


def check_redis() -> str:
    _redis_client().ping()
    return OK


def check_migrations() -> str:
    """All of this code's migrations are applied (a new release waits for its
    migration Job before it takes traffic)."""
    global _migrations_applied
    if _migrations_applied:
        return OK
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        return f"unapplied: {', '.join(names[:3])}{more}"
    _migrations_applied = True
    return OK


def _run(checks: dict[str, Callable[[], str]]) -> dict[str, str]:
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            results[name] = check()
        except Exception as exc:  # any failure is reported, not raised
            results[name] = f"error: {type(exc).__name__}"
    return results


def readiness_checks() -> dict[str, str]:
    """What a process needs to serve: the database, Redis, the schema."""
    results = _run({"database": check_database, "redis": check_redis})
    # Without a database the migrations cannot be read either: say so once.
    if results["database"] == OK:
        results.update(_run({"migrations": check_migrations}))
    return results


def _heartbeat_verdict(age: float | None, stale_after: float) -> str:
    if age is None:
        return "stale: no heartbeat recorded yet"
    if age > stale_after:
        return f"stale: last heartbeat {age:.0f} s ago"
    return OK


def heartbeat_checks() -> dict[str, str]:
    """Beat's last tick and each queue's worker heartbeat ("beat", "queue:<name>")."""
    names = {"beat": beat_name(), **{f"queue:{q}": f"queue:{q}" for q in installation_queues()}}
    try:
        ages = heartbeat_ages(names=list(names.values()))
    except Exception as exc:
        return {check: f"error: {type(exc).__name__}" for check in names}
    stale_after = settings.KUBEPROBE_HEARTBEAT_STALE_SECONDS
    return {check: _heartbeat_verdict(ages[key], stale_after) for check, key in names.items()}


def failing(results: dict[str, str]) -> list[str]:
    return [name for name, result in results.items() if result != OK]
