"""The production WSGI entry: reports take the lean middleware chain, with the same answers."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.utils import timezone

from apps.runs.models import ProbeRun, RunState
from apps.runs.services import hash_token
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


def same_answer(make_request: Any) -> tuple[str, Any, bytes]:
    """The answer of the full chain and of the production entry (lean chain) to one request."""
    full = make_request(WSGIHandler())
    lean = make_request(wsgi.application)
    assert lean == full
    return lean


def test_the_lean_chain_keeps_everything_but_what_reports_never_use() -> None:
    from django.conf import settings

    lean = wsgi.lean_middleware(settings.MIDDLEWARE)
    assert "django.middleware.security.SecurityMiddleware" in lean
    assert "django.middleware.common.CommonMiddleware" in lean
    assert "django.middleware.clickjacking.XFrameOptionsMiddleware" in lean
    assert not set(lean) & wsgi.REPORT_SKIPS_MIDDLEWARE
    assert [m for m in settings.MIDDLEWARE if m in lean] == lean  # same order
    assert lean != settings.MIDDLEWARE  # building the lean handler left the settings alone


@pytest.mark.django_db(transaction=True)
def test_stored_reports_answer_the_same() -> None:
    first, second = runs(2)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    full = call(WSGIHandler(), "POST", f"/api/v1/runs/{first}/report", GOOD, **headers)
    lean = call(wsgi.application, "POST", f"/api/v1/runs/{second}/report", GOOD, **headers)
    assert full[0] == lean[0] == "200 OK"
    assert full[1] == lean[1]
    assert json.loads(lean[2]) == {"id": second, "state": "failed"}
    assert ProbeRun.objects.get(pk=second).state == RunState.FAILED


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
    lean = call(wsgi.application, "POST", path, body, HTTP_KH_RUN_UUID="kh-2")
    assert full == lean and lean[0] == "200 OK"
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
