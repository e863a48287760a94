"""WSGI entry point: the production HTTP server (gunicorn) for admin, API and reports.

Websockets (dashboards) are served by daphne from kubeprobe_site.asgi; the
ingress sends /ws/ there and everything else here. Django's sync views run
several times faster under WSGI than under ASGI's per-request threads.

Probe reports, the hot path, go through a second Django handler whose
middleware chain leaves out what those endpoints never use (see
``lean_middleware``); everything else gets the full chain.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")

# The report endpoints authenticate by the run's own bearer token, are
# CSRF-exempt and never touch the session, the user or messages, and are not
# static files: these middlewares do nothing for them but cost time. The rest
# (host validation, HTTPS redirect, security headers, APPEND_SLASH,
# X-Frame-Options) stays, so the answers are the same byte for byte.
REPORT_SKIPS_MIDDLEWARE = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "apps.core.middleware.SyncChain",  # only matters under ASGI
    }
)
# PATH_INFO of the two report endpoints (anything else takes the full chain).
REPORT_PATH = re.compile(r"/api/v1/(?:runs/[^/]+/report|kuberhealthy/check)")
RUN_REPORT_PATH = re.compile(r"/api/v1/runs/[^/]+/report")


def lean_middleware(middleware: list[str]) -> list[str]:
    return [path for path in middleware if path not in REPORT_SKIPS_MIDDLEWARE]


class ReportHandler(WSGIHandler):
    """Django's WSGI handler with the lean middleware chain."""

    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds the chain from settings.MIDDLEWARE; lend it the lean
        # list while the chain is built (once, at start-up).
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = lean_middleware(full)
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


StartResponse = Callable[..., Any]


def make_application() -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    django_app = get_wsgi_application()  # sets Django up first
    report_app = ReportHandler()

    from apps.runs import ingest

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not REPORT_PATH.fullmatch(path):
            return django_app(environ, start_response)
        if RUN_REPORT_PATH.fullmatch(path) and environ.get("REQUEST_METHOD") == "POST":
            # Announced from the start, so a batch being collected waits for it.
            with ingest.arriving():
                return report_app(environ, start_response)
        return report_app(environ, start_response)

    return application


application = make_application()
