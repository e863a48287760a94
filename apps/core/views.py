from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

_redis: redis.Redis | None = None


def _redis_client() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
    return _redis


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_redis() -> str:
    _redis_client().ping()
    return "ok"


@never_cache
@require_GET
def livez(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches nothing else (use /healthz for dependencies)."""
    return HttpResponse("ok", content_type="text/plain")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness/readiness: 200 when the database and Redis answer, 503 naming what failed."""
    checks: dict[str, str] = {}
    for name, check in (("database", _check_database), ("redis", _check_redis)):
        try:
            checks[name] = check()
        except Exception as exc:  # any failure is reported, not raised
            # Class name only: messages can carry connection strings.
            checks[name] = f"error: {type(exc).__name__}"
    failing = [name for name, result in checks.items() if result != "ok"]
    status = 503 if failing else 200
    body: dict[str, object] = {"status": "ok" if not failing else "failing", "checks": checks}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=status)


def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers ask for on every page (the admin's too): the icon's
    static URL, resolved per request (hashed names exist only after collectstatic)."""
    from django.shortcuts import redirect
    from django.templatetags.static import static

    return redirect(static("favicon.svg"))
