"""The production WSGI entry: plain reports skip Django's handler, with the same answers."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.test import override_settings
from django.utils import timezone

from apps.core.crypto import hash_token
from apps.runs.models import ProbeRun, RunState
from apps.runs.reporting import http
from apps.runs.reporting.fastpath import ReportEndpoint
from kubeprobe_site import wsgi
from tests.factories import ClusterFactory
from tests.runs.helpers import make_case, make_run

TOKEN = "wsgi-" + "q" * 30
GOOD = json.dumps({"ok": False, "errors": ["etcd: timeout"], "steps": [], "metrics": {}}).encode()


def call(
    app: Any, method: str, path: str, body: bytes = b"", **extra: str
) -> tuple[str, Any, bytes]:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        **extra,
    }
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"], answer["headers"] = status, headers

    chunks = app(environ, start_response)
    content = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return answer["status"], sorted(answer["headers"]), content


def runs(count: int, **changes: Any) -> list[int]:
    case, cluster = make_case(), ClusterFactory()
    ids = []
    for _ in range(count):
        run = make_run(case, cluster)
        ProbeRun.objects.filter(pk=run.pk).update(
            **{
                "state": RunState.RUNNING,
                "token_hash": hash_token(TOKEN),
                "dispatched_at": timezone.now(),
                "deadline": timezone.now() + timedelta(minutes=5),
                **changes,
            }
        )
        ids.append(run.pk)
    return ids


def headers_of(answer: tuple[str, Any, bytes], run: int, as_run: int) -> list[tuple[str, str]]:
    """An answer's headers as if it named `as_run` (Location, Content-Length), checked."""
    _, headers, body = answer
    assert dict(headers).get("Content-Length", "0") == str(len(body))
    return [(k, v.replace(f"/{run}/", f"/{as_run}/")) for k, v in headers if k != "Content-Length"]


def same_answer(make_request: Any) -> tuple[str, Any, bytes]:
    """The answer of Django's handler and of the production entry to one request."""
    full = make_request(WSGIHandler())
    fast = make_request(wsgi.application)
    assert fast == full
    return fast


def no_django(environ: dict[str, Any], start_response: Any) -> Any:
    raise AssertionError(f"Django's handler was asked for {environ['PATH_INFO']}")


def test_the_fast_path_stands_in_for_the_project_middleware_only() -> None:
    assert ReportEndpoint(no_django).enabled
    gzip = "django.middleware.gzip.GZipMiddleware"
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, gzip]):
        assert not ReportEndpoint(no_django).enabled  # unknown middleware: Django answers
    with override_settings(PREPEND_WWW=True):
        assert not ReportEndpoint(no_django).enabled


@pytest.mark.django_db(transaction=True)
def test_plain_reports_never_reach_djangos_handler() -> None:
    run, kh = runs(2)
    ProbeRun.objects.filter(pk=kh).update(token_hash=hash_token("kh-fast"))
    app = ReportEndpoint(no_django)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    assert call(app, "POST", f"/api/v1/runs/{run}/report", GOOD, **auth)[0] == "200 OK"
    assert call(app, "POST", f"/api/v1/runs/{run}/report", GOOD, **auth)[0] == "409 Conflict"
    khpath = "/api/v1/kuberhealthy/check"
    assert call(app, "POST", khpath, GOOD, HTTP_KH_RUN_UUID="kh-fast")[0] == "200 OK"
    assert ProbeRun.objects.get(pk=run).state == ProbeRun.objects.get(pk=kh).state == "failed"
    with pytest.raises(AssertionError, match="handler was asked"):  # Django refuses bad hosts
        call(app, "POST", f"/api/v1/runs/{run}/report", GOOD, **auth, HTTP_HOST="evil.example")


@pytest.mark.django_db(transaction=True)
def test_stored_reports_answer_the_same() -> None:
    first, second = runs(2)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    full = call(WSGIHandler(), "POST", f"/api/v1/runs/{first}/report", GOOD, **headers)
    fast = call(wsgi.application, "POST", f"/api/v1/runs/{second}/report", GOOD, **headers)
    assert full[0] == fast[0] == "200 OK"
    assert headers_of(full, first, first) == headers_of(fast, second, first)
    assert json.loads(fast[2]) == {"id": second, "state": "failed"}
    assert ProbeRun.objects.get(pk=second).state == RunState.FAILED
    assert ("Content-Language", "en") in fast[1]  # as LocaleMiddleware says it


@pytest.mark.django_db(transaction=True)
def test_a_report_naming_a_language_goes_through_django_and_answers_alike() -> None:
    first, second = runs(2)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}", "HTTP_ACCEPT_LANGUAGE": "zh-CN"}
    with pytest.raises(AssertionError, match="handler was asked"):  # not the fast path's
        call(ReportEndpoint(no_django), "POST", f"/api/v1/runs/{first}/report", GOOD, **headers)
    full = call(WSGIHandler(), "POST", f"/api/v1/runs/{first}/report", GOOD, **headers)
    through = call(wsgi.application, "POST", f"/api/v1/runs/{second}/report", GOOD, **headers)
    assert full[0] == through[0] == "200 OK"
    assert headers_of(full, first, first) == headers_of(through, second, first)
    assert ("Content-Language", "zh-hans") in through[1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("bad token", "401"),
        ("no token", "401"),
        ("unknown run", "404"),
        ("finished", "409"),
        ("past deadline", "410"),
        ("invalid body", "400"),
        ("not json", "400"),
        ("too big", "413"),
        ("GET", "405"),
        ("bad host", "400"),
        ("no slash route", "404"),
        ("run id past bigint", "404"),
        ("run id past int()", "404"),
    ],
)
def test_refused_reports_answer_the_same(name: str, status: str) -> None:
    [open_run] = runs(1)
    [finished] = runs(1, state=RunState.SUCCEEDED)
    [late] = runs(1, deadline=timezone.now() - timedelta(hours=1))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    url = f"/api/v1/runs/{open_run}/report"
    cases: dict[str, tuple[str, str, bytes, dict[str, str]]] = {
        "bad token": ("POST", url, GOOD, {"HTTP_AUTHORIZATION": "Bearer nope"}),
        "no token": ("POST", url, GOOD, {}),
        "unknown run": ("POST", f"/api/v1/runs/{late + 1000}/report", GOOD, auth),
        "finished": ("POST", f"/api/v1/runs/{finished}/report", GOOD, auth),
        "past deadline": ("POST", f"/api/v1/runs/{late}/report", GOOD, auth),
        "invalid body": ("POST", url, b'{"ok": "yes"}', auth),
        "not json": ("POST", url, b"{", auth),
        "too big": ("POST", url, b" " * (256 * 1024 + 1), auth),
        "GET": ("GET", url, b"", auth),
        "bad host": ("POST", url, GOOD, {**auth, "HTTP_HOST": "evil.example"}),
        "no slash route": ("POST", "/api/v1/runs/x/report", GOOD, auth),
        "run id past bigint": ("POST", f"/api/v1/runs/{2**63}/report", GOOD, auth),
        "run id past int()": ("POST", f"/api/v1/runs/{'9' * 5000}/report", GOOD, auth),
    }
    method, path, body, extra = cases[name]
    answer = same_answer(lambda app: call(app, method, path, body, **extra))
    assert answer[0].startswith(status)
    assert ProbeRun.objects.get(pk=open_run).state == RunState.RUNNING  # nothing stored


@pytest.mark.django_db(transaction=True)
def test_kuberhealthy_reports_answer_the_same() -> None:
    first, second = runs(2)
    ProbeRun.objects.filter(pk=first).update(token_hash=hash_token("kh-1"))
    ProbeRun.objects.filter(pk=second).update(token_hash=hash_token("kh-2"))
    body = b'{"OK": false, "Errors": ["down"]}'
    path = "/api/v1/kuberhealthy/check"
    full = call(WSGIHandler(), "POST", path, body, HTTP_KH_RUN_UUID="kh-1")
    fast = call(wsgi.application, "POST", path, body, HTTP_KH_RUN_UUID="kh-2")
    assert full == fast and fast[0] == "200 OK"
    assert ProbeRun.objects.get(pk=second).state == RunState.FAILED
    for extra in ({"HTTP_KH_RUN_UUID": "kh-1"}, {}, {"CONTENT_TYPE": "text/plain"}):
        answer = same_answer(lambda app, extra=extra: call(app, "POST", path, body, **extra))
        assert answer[0][:3] in {"400", "415"}


@pytest.mark.django_db
def test_other_paths_take_the_full_chain() -> None:
    # The session middleware only runs in the full chain: the admin login page sets its cookie.
    status, headers, _ = call(wsgi.application, "GET", "/admin/login/")
    assert status == "200 OK"
    assert any(name == "Set-Cookie" and "csrftoken" in value for name, value in headers)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("scheme", "extra", "status"),
    [
        ("https", {}, "200"),  # with HSTS
        ("http", {}, "301"),  # redirected to HTTPS, nothing stored
        ("http", {"HTTP_X_FORWARDED_PROTO": "https"}, "200"),  # TLS ended at the proxy
        ("http", {"HTTP_X_FORWARDED_PROTO": "http"}, "301"),
    ],
)
def test_https_settings_answer_the_same(scheme: str, extra: dict[str, str], status: str) -> None:
    first, second = runs(2)
    https = {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
        "SECURE_REFERRER_POLICY": "no-referrer, strict-origin",
        "X_FRAME_OPTIONS": "SAMEORIGIN",
    }
    headers = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}", "wsgi.url_scheme": scheme, **extra}
    with override_settings(**https):
        app = wsgi.make_application()
        full = call(WSGIHandler(), "POST", f"/api/v1/runs/{first}/report", GOOD, **headers)
        fast = call(app, "POST", f"/api/v1/runs/{second}/report", GOOD, **headers)
    assert full[0][:3] == fast[0][:3] == status
    assert headers_of(full, first, first) == headers_of(fast, second, first)
    if status == "200":
        assert ("Strict-Transport-Security", "max-age=3600; preload") in fast[1]
        assert ("Referrer-Policy", "no-referrer,strict-origin") in fast[1]
        assert ProbeRun.objects.get(pk=second).state == RunState.FAILED
    else:
        assert ProbeRun.objects.get(pk=second).state == RunState.RUNNING


@pytest.mark.django_db(transaction=True)
def test_refusals_are_logged_as_django_logs_them(caplog: pytest.LogCaptureFixture) -> None:
    [finished] = runs(1, state=RunState.SUCCEEDED)
    path = f"/api/v1/runs/{finished}/report"
    logged = []
    for app in (WSGIHandler(), wsgi.application):
        caplog.clear()
        with caplog.at_level("WARNING", logger="django.request"):
            call(app, "POST", path, GOOD, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        logged.append([(r.levelname, r.getMessage(), r.status_code) for r in caplog.records])
    assert logged[0] == logged[1] == [("WARNING", f"Conflict: {path}", 409)]


@pytest.mark.django_db(transaction=True)
def test_an_unexpected_error_is_the_same_logged_500(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    [run] = runs(1)

    def broken(**kwargs: Any) -> str:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(http, "run_report", broken)
    path = f"/api/v1/runs/{run}/report"
    with caplog.at_level("ERROR", logger="django.request"):
        answer = same_answer(lambda app: call(app, "POST", path, GOOD))
    assert answer[0] == "500 Internal Server Error"
    assert len(caplog.records) == 2  # once per handler, with the traceback
    assert all("disk on fire" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


@pytest.mark.django_db(transaction=True)
def test_the_proxy_header_decides_per_request_whether_a_report_came_over_https() -> None:
    ids = runs(3)
    proxy = {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 60,
        "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    }
    with override_settings(**proxy):
        app = ReportEndpoint(no_django)  # one endpoint: its memo sees every variant
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    over_tls = {**auth, "HTTP_X_FORWARDED_PROTO": "https"}
    with override_settings(**proxy):
        answer = call(app, "POST", f"/api/v1/runs/{ids[0]}/report", GOOD, **over_tls)
        assert answer[0] == "200 OK"
        assert ("Strict-Transport-Security", "max-age=60") in answer[1]
        for plain in (auth, {**auth, "HTTP_X_FORWARDED_PROTO": "http"}):
            with pytest.raises(AssertionError, match="handler was asked"):  # Django redirects
                call(app, "POST", f"/api/v1/runs/{ids[1]}/report", GOOD, **plain)
        assert call(app, "POST", f"/api/v1/runs/{ids[2]}/report", GOOD, **over_tls)[0] == "200 OK"
    assert ProbeRun.objects.get(pk=ids[1]).state == RunState.RUNNING


@pytest.mark.django_db
def test_made_up_hosts_stay_refused_and_bounded() -> None:
    app = ReportEndpoint(WSGIHandler())
    for i in range(app.MAX_ORIGINS + 10):
        status, _, _ = call(app, "POST", "/api/v1/runs/1/report", GOOD, HTTP_HOST=f"h{i}.evil")
        assert status.startswith("400")
    assert len(app.origins) <= app.MAX_ORIGINS
    # A remembered verdict is still a refusal.
    assert call(app, "POST", "/api/v1/runs/1/report", GOOD, HTTP_HOST="h1030.evil")[0][:3] == "400"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/check", "/api/v1/kuberhealthy/check"])
def test_kuberhealthy_reports_are_taken_at_both_paths(path: str) -> None:
    [run] = runs(1)
    ProbeRun.objects.filter(pk=run).update(token_hash=hash_token("kh-path"))
    body = b'{"OK": true, "Errors": []}'
    answer = call(ReportEndpoint(no_django), "POST", path, body, HTTP_KH_RUN_UUID="kh-path")
    assert answer[0] == "200 OK"
    assert ProbeRun.objects.get(pk=run).state == RunState.SUCCEEDED


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("app", [WSGIHandler, lambda: wsgi.application], ids=["django", "fast"])
def test_a_chunked_report_is_read_whole(app: Any) -> None:
    """No Content-Length: the server's de-chunked stream (gunicorn sets
    wsgi.input_terminated) holds the body; it must not be read as empty."""
    [run] = runs(1)
    answer = call(
        app(),
        "POST",
        f"/api/v1/runs/{run}/report",
        GOOD,
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
        **{"wsgi.input_terminated": True},  # type: ignore[arg-type]
    )
    assert answer[0] == "200 OK", answer
    assert ProbeRun.objects.get(pk=run).errors == ["etcd: timeout"]


@pytest.mark.django_db(transaction=True)
def test_a_chunked_report_over_the_limit_is_refused() -> None:
    [run] = runs(1)
    huge = json.dumps({"ok": False, "errors": ["x" * (300 * 1024)]}).encode()
    answer = call(
        wsgi.application,
        "POST",
        f"/api/v1/runs/{run}/report",
        huge,
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        CONTENT_LENGTH="",
        **{"wsgi.input_terminated": True},  # type: ignore[arg-type]
    )
    assert answer[0].startswith("413")
    assert ProbeRun.objects.get(pk=run).state == RunState.RUNNING


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/runs/1/report", "/check", "/api/v1/kuberhealthy/check"])
@pytest.mark.parametrize("method", ["TRACE", "GET", "PUT"])
def test_other_methods_are_405_naming_the_allowed_one(path: str, method: str) -> None:
    status, headers, _ = call(wsgi.application, method, path)
    assert status.startswith("405")
    assert dict(headers)["Allow"] == "POST"
