from __future__ import annotations

import gzip

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.core import health
from apps.core.metrics import CONTENT_TYPE, metrics_authorized, metrics_exposition


@never_cache
@require_GET
def livez(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches nothing else (use /readyz for dependencies)."""
    return HttpResponse("ok", content_type="text/plain")


def _answer(results: dict[str, str]) -> JsonResponse:
    failing = health.failing(results)
    body: dict[str, object] = {"status": "failing" if failing else "ok", "checks": results}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness (Kubernetes): 200 when the database and Redis answer and every
    migration is applied; 503 naming what failed."""
    return _answer(health.readiness_checks())


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For humans and monitors: readiness plus beat's last tick and a heartbeat from
    a worker on each queue; 503 naming what is failing or stale."""
    return _answer({**health.readiness_checks(), **health.heartbeat_checks()})


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition. With KUBEPROBE_METRICS_TOKEN set, only with that bearer token."""
    if not metrics_authorized(request.headers.get("Authorization", "")):
        response = HttpResponse(
            "metrics need Authorization: Bearer <KUBEPROBE_METRICS_TOKEN>\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body = metrics_exposition()
    # Prometheus asks for gzip: tens of MB of repetitive text at 10,000 clusters.
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response = HttpResponse(gzip.compress(body, compresslevel=1), content_type=CONTENT_TYPE)
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(body, content_type=CONTENT_TYPE)
    patch_vary_headers(response, ["Accept-Encoding"])
    return response


def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers ask for on every page (the admin's too): the icon's
    static URL, resolved per request (hashed names exist only after collectstatic)."""
    from django.shortcuts import redirect
    from django.templatetags.static import static

    return redirect(static("favicon.svg"))


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for URLs no route matches: JSON under /api/, as the API's own 404s are."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
