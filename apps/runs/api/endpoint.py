"""The two report endpoints: their answers, and a WSGI fast path for them.

Reports are the hot path (every probe pod of every cluster reports once per
run), and Django's request handling (request object, request signals,
middleware chain, URL resolving, view dispatch, response object) costs more
CPU than validating and storing the report. So the production WSGI entry
(kubeprobe_site.wsgi) hands a plain report (a POST to an allowed host with
no HTTPS redirect due) to ReportEndpoint, which answers it without Django's
handler; anything else, and every other server (daphne, the test client),
goes through Django and the views in apps.runs.api.views. Both ask
``run_report_answer`` / ``kuberhealthy_answer`` below for the answer, and
the fast path adds the headers Django's middleware would, worked out once by
that middleware itself: the answers are the same byte for byte
(tests/runs/test_report_wsgi.py).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import LimitedStream, WSGIRequest
from django.db import close_old_connections
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.log import log_response

from apps.runs import finishing, ingest

logger = logging.getLogger(__name__)

MAX_RUN_ID = 2**63 - 1  # bigint
MAX_RUN_ID_DIGITS = len(str(MAX_RUN_ID))
JSON = "application/json"
TEXT = "text/plain"

# PATH_INFO of the endpoints (as routed in kubeprobe_site.urls; <int:> is [0-9]+).
RUN_REPORT_PATH = re.compile(r"/api/v1/runs/([0-9]+)/report")
KUBERHEALTHY_PATH = "/api/v1/kuberhealthy/check"

# The fast path stands in for exactly this middleware chain: the rest of
# settings.MIDDLEWARE does nothing for the report endpoints, which
# authenticate by the run's own token, are CSRF-exempt, never touch the
# session, user or messages and are not static files.
MIRRORED_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    @classmethod
    def json(cls, status: int, payload: Any) -> Answer:
        # Separators as json.dumps' (and JsonResponse's) defaults.
        return cls(status, JSON, json.dumps(payload).encode())

    def response(self) -> HttpResponse:
        return HttpResponse(self.body, status=self.status, content_type=self.content_type)


Read = Callable[[int], bytes]


def _read_body(meta: Mapping[str, Any], read: Read) -> bytes:
    """The body, refusing (413) anything over the report limit before reading it whole."""
    limit = settings.KUBEPROBE_MAX_REPORT_BYTES
    declared = meta.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise finishing.ReportRejected(413, {"detail": "report body is over 256 KiB"})
    return read(limit + 1)


def run_report_answer(run_id: int, meta: Mapping[str, Any], read: Read) -> Answer:
    """Answer `POST /api/v1/runs/<run_id>/report`; meta is the WSGI environ (request.META)."""
    if run_id > MAX_RUN_ID:
        return Answer.json(404, {"detail": f"no run {run_id}"})
    scheme, _, token = meta.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer":
        token = ""
    try:
        state = finishing.run_report(
            run_id=run_id, token=token.strip(), body=_read_body(meta, read)
        )
    except finishing.ReportRejected as exc:
        return Answer.json(exc.status, exc.detail)
    return Answer.json(200, {"id": run_id, "state": state})


def kuberhealthy_answer(meta: Mapping[str, Any], read: Read) -> Answer:
    """Answer `POST /api/v1/kuberhealthy/check` as Kuberhealthy v3 does (plain text)."""
    if not meta.get("CONTENT_TYPE", "").startswith("application/json"):
        return Answer(415, TEXT, b"")
    try:
        finishing.run_report_kuberhealthy(
            run_uuid=meta.get("HTTP_KH_RUN_UUID", ""), body=_read_body(meta, read)
        )
    except finishing.ReportRejected as exc:
        return Answer(exc.status, TEXT, str(exc.detail).encode())
    return Answer(200, TEXT, b"")


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _middleware_headers(secure: bool) -> list[tuple[str, str]]:
    """The headers the mirrored middleware adds to an answer (Content-Length aside)."""
    # No proxy header in this environ: the scheme decides is_secure().
    request = WSGIRequest(
        {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": KUBERHEALTHY_PATH,
            "wsgi.url_scheme": "https" if secure else "http",
            "wsgi.input": io.BytesIO(),
        }
    )

    def respond(_: Any) -> HttpResponse:
        return HttpResponse(content_type=TEXT)

    response = respond(request)
    for middleware in (SecurityMiddleware(respond), XFrameOptionsMiddleware(respond)):
        response = middleware.process_response(request, response)
    return [(name, value) for name, value in response.items() if name != "Content-Type"]


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
        if run is None and path != KUBERHEALTHY_PATH:
            return self.django_app(environ, start_response)
        if run is not None and len(run.group(1)) > MAX_RUN_ID_DIGITS:
            return self.django_app(environ, start_response)  # 404, as Django finds no run
        secure = self._origin(environ)
        if secure is None:
            return self.django_app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # as Django reads it
        read = LimitedStream(environ["wsgi.input"], length).read
        # What Django's request_started and request_finished signals do for us:
        # drop connections past CONN_MAX_AGE or broken.
        close_old_connections()
        try:
            if run is not None:
                # Announced from the start, so a batch being collected waits for it.
                with ingest.arriving():
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
        start_response(
            f"{answer.status} {HTTPStatus(answer.status).phrase}",
            [
                ("Content-Type", answer.content_type),
                ("Content-Length", str(len(answer.body))),
                *self.headers[secure],
            ],
        )
        return [answer.body]
