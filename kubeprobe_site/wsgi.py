"""WSGI entry point: the production HTTP server (gunicorn) for admin, API and reports.

Websockets (dashboards) are served by daphne from kubeprobe_site.asgi; the
ingress sends /ws/ there and everything else here. Django's sync views run
several times faster under WSGI than under ASGI's per-request threads.

Probe reports, the hot path, are answered by apps.runs.reporting.fastpath
without Django's request handler when they are plain (see there); everything
else goes through Django.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")

StartResponse = Callable[..., Any]


def make_application() -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    django_app = get_wsgi_application()  # sets Django up first
    from apps.runs.reporting.fastpath import PREFIXES, ReportEndpoint

    reports = ReportEndpoint(django_app)

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(PREFIXES):
            return reports(environ, start_response)
        return django_app(environ, start_response)

    return application


application = make_application()
