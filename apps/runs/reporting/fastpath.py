"""A WSGI fast path for plain reports, in front of Django.

Reports are the hot path: every probe pod of every cluster reports once per
run. Django's request handling (request object, request signals, middleware
chain, URL resolving, view dispatch, response object) cost more CPU than
validating and storing a report: in-process, a report's Python time was
1.1–1.8 ms through Django and 0.45–0.55 ms here, about what a trivial view
costs through Django. Measured end to end with bench/ingest.py (README,
Benchmarks), this path is most of what keeps ingestion above half the
trivial view's rate on the same server (27–31% through Django before the
fast path and the statement changes, 55–59% after).

The production WSGI entry (kubeprobe_site.wsgi) hands a POST to a report
path, from an allowed host with no HTTPS redirect due, to ReportEndpoint,
which answers it with http.py's answer functions and adds the headers
Django's middleware would, worked out once by that middleware itself. The
answers are the same byte for byte as through Django
(tests/runs/test_report_http.py); anything unusual, and every other server
(daphne, the test client), goes through Django and http.py's views.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import LimitedStream, WSGIRequest
from django.db import close_old_connections
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.locale import LocaleMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils import translation
from django.utils.log import log_response

from apps.core.logcontext import log_context_begin, log_context_end, request_id_from
from apps.runs.reporting.http import (
    MAX_RUN_ID,
    TEXT,
    Answer,
    kuberhealthy_answer,
    run_report_answer,
)

logger = logging.getLogger(__name__)

MAX_RUN_ID_DIGITS = len(str(MAX_RUN_ID))

# PATH_INFO of the endpoints (as routed in kubeprobe_site.urls; <int:> is [0-9]+).
RUN_REPORT_PATH = re.compile(r"/api/v1/runs/([0-9]+)/report")
KUBERHEALTHY_PATHS = frozenset({"/check", "/api/v1/kuberhealthy/check"})
# Every path above starts so: kubeprobe_site.wsgi sends only these here.
PREFIXES = ("/api/v1/runs/", "/api/v1/kuberhealthy/", "/check")

# The fast path stands in for exactly this middleware chain: the rest of
# settings.MIDDLEWARE does nothing for the report endpoints, which
# authenticate by the run's own token, are CSRF-exempt, never touch the
# session, user or messages and are not static files.
MIRRORED_MIDDLEWARE = [
    "apps.core.middleware.RequestId",
    "django.middleware.security.SecurityMiddleware",
    # Report answers are not translated; it only adds Content-Language and Vary,
    # the same for every request that names no language (others go to Django).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
UNUSED_MIDDLEWARE = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "apps.core.middleware.SyncChain",  # only matters under ASGI
    }
)


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _middleware_headers(secure: bool) -> list[tuple[str, str]]:
    """The headers the mirrored middleware adds to an answer (Content-Length aside)."""
    # No proxy header in this environ: the scheme decides is_secure().
    request = WSGIRequest(
        {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/check",
            "wsgi.url_scheme": "https" if secure else "http",
            "wsgi.input": io.BytesIO(),
        }
    )

    def respond(_: Any) -> HttpResponse:
        return HttpResponse(content_type=TEXT)

    locale = LocaleMiddleware(respond)
    # process_request activates the request's language: not this thread's for good.
    with translation.override(None):
        locale.process_request(request)
        response = respond(request)
        for middleware in (SecurityMiddleware(respond), XFrameOptionsMiddleware(respond)):
            response = middleware.process_response(request, response)
        answered = locale.process_response(request, response)
    return [(name, value) for name, value in answered.items() if name != "Content-Type"]


class ReportEndpoint:
    """WSGI app for the report endpoints; hands anything unusual to `django_app`.

    Built once per process after Django is set up, from the settings then in
    force. Host validation, the HTTPS redirect and their refusals stay
    Django's: a request the fast path is not sure about goes to Django before
    its body is read.
    """

    MAX_ORIGINS = 1024

    def __init__(self, django_app: WSGIApp) -> None:
        self.django_app = django_app
        lean = [m for m in settings.MIDDLEWARE if m not in UNUSED_MIDDLEWARE]
        # Any other middleware (or CommonMiddleware doing more than its
        # defaults) might change the answer: then Django answers every report.
        self.enabled = (
            lean == MIRRORED_MIDDLEWARE
            and not settings.PREPEND_WWW
            and not settings.DISALLOWED_USER_AGENTS
            # Django would wrap the views in a transaction.
            and not any(db.get("ATOMIC_REQUESTS") for db in settings.DATABASES.values())
        )
        self.headers = {secure: _middleware_headers(secure) for secure in (False, True)}
        proxy = settings.SECURE_PROXY_SSL_HEADER
        self.proxy_header = proxy[0] if proxy else None
        # Django's verdict on each origin seen (None: Django must answer it);
        # probes report from a handful of origins.
        self.origins: dict[tuple[Any, ...], bool | None] = {}

    def _origin(self, environ: dict[str, Any]) -> bool | None:
        """Whether the request is secure, or None if its host is not allowed or
        it must be redirected to HTTPS. Asks Django once per origin."""
        # Every environ value that get_host() and is_secure() read.
        key = (
            environ.get("HTTP_HOST"),
            environ.get("HTTP_X_FORWARDED_HOST"),
            environ.get("SERVER_NAME"),
            environ.get("SERVER_PORT"),
            environ.get("HTTP_X_FORWARDED_PORT"),
            environ.get("wsgi.url_scheme"),
            environ.get(self.proxy_header) if self.proxy_header else None,
        )
        try:
            return self.origins[key]
        except KeyError:
            pass
        request = WSGIRequest(dict(environ))  # it rewrites PATH_INFO; Django may need it as is
        try:
            request.get_host()
        except DisallowedHost:
            verdict = None  # Django answers 400 and logs it
        else:
            secure = request.is_secure()
            verdict = None if settings.SECURE_SSL_REDIRECT and not secure else secure
        if len(self.origins) >= self.MAX_ORIGINS:  # a flood of made-up hosts
            self.origins.clear()
        self.origins[key] = verdict
        return verdict

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self.enabled or environ.get("REQUEST_METHOD") != "POST":
            return self.django_app(environ, start_response)
        path = environ.get("PATH_INFO", "")
        run = RUN_REPORT_PATH.fullmatch(path)
        if run is None and path not in KUBERHEALTHY_PATHS:
            return self.django_app(environ, start_response)
        if run is not None and len(run.group(1)) > MAX_RUN_ID_DIGITS:
            return self.django_app(environ, start_response)  # 404, as Django finds no run
        if "HTTP_ACCEPT_LANGUAGE" in environ or (
            settings.LANGUAGE_COOKIE_NAME in environ.get("HTTP_COOKIE", "")
        ):
            return self.django_app(environ, start_response)  # its Content-Language is Django's
        secure = self._origin(environ)
        if secure is None:
            return self.django_app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # as Django reads it
        read = LimitedStream(environ["wsgi.input"], length).read
        given = environ.get("HTTP_X_REQUEST_ID")
        request_id = request_id_from(given)  # as apps.core.middleware.RequestId
        log_context_begin(request_id=request_id)
        try:
            answer = self._answer(environ, run, read)
        finally:
            log_context_end()
        headers = [
            ("Content-Type", answer.content_type),
            ("Content-Length", str(len(answer.body))),
            *self.headers[secure],
        ]
        if request_id == given:
            headers.append(("X-Request-ID", request_id))
        start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", headers)
        return [answer.body]

    def _answer(
        self, environ: dict[str, Any], run: re.Match[str] | None, read: Callable[[int], bytes]
    ) -> Answer:
        # What Django's request_started and request_finished signals do for us:
        # drop connections past CONN_MAX_AGE or broken.
        close_old_connections()
        try:
            if run is not None:
                answer = run_report_answer(int(run.group(1)), environ, read)
            else:
                answer = kuberhealthy_answer(environ, read)
        except Exception as exc:  # as Django does: log it with its traceback, answer 500
            response = response_for_exception(WSGIRequest(environ), exc)
            answer = Answer(response.status_code, response["Content-Type"], response.content)
        else:
            if answer.status >= 400:
                request = WSGIRequest(environ)
                log_response(
                    "%s: %s",
                    HTTPStatus(answer.status).phrase,
                    request.path,
                    response=answer.response(),
                    request=request,
                )
        finally:
            close_old_connections()
        return answer
