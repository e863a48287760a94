"""Log lines carry the request id, run id and cluster where they apply; JSON lines
with KUBEPROBE_LOG_FORMAT=json."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from apps.core.logcontext import ContextFilter, JsonLinesFormatter, PlainFormatter, log_context
from apps.runs.models import ProbeRun, RunState
from apps.runs.tasks import dispatch_run
from kubeprobe_site import wsgi
from tests.factories import ClusterFactory
from tests.runs.helpers import make_case, make_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The console handler as settings.LOGGING builds it for the json format."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLinesFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def lines(stream: io.StringIO, message: str) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in found if message in line["message"]]


def test_json_lines_hold_the_fields_in_force_and_only_those(json_lines: io.StringIO) -> None:
    log = logging.getLogger("kubeprobe.test")
    with log_context(request_id="r-1", run_id=7, cluster="east"):
        log.warning("inside")
    log.warning("outside")
    (inside,) = lines(json_lines, "inside")
    assert inside["level"] == "WARNING" and inside["logger"] == "kubeprobe.test"
    assert (inside["request_id"], inside["run_id"], inside["cluster"]) == ("r-1", 7, "east")
    assert inside["asctime"]
    (outside,) = lines(json_lines, "outside")
    assert not {"request_id", "run_id", "cluster"} & set(outside)


@pytest.mark.django_db
def test_a_request_logs_under_the_clients_request_id(
    client: Client, json_lines: io.StringIO
) -> None:
    response = client.get("/no-such-page", HTTP_X_REQUEST_ID="ingress-42")
    assert response.status_code == 404 and response["X-Request-ID"] == "ingress-42"
    (line,) = lines(json_lines, "Not Found: /no-such-page")
    assert line["request_id"] == "ingress-42"
    # No id given, or one that could forge log lines: a new one, logged, not echoed.
    response = client.get("/no-such-page", HTTP_X_REQUEST_ID="bad id\nforged")
    assert "X-Request-ID" not in response
    made = lines(json_lines, "Not Found: /no-such-page")[1]["request_id"]
    assert made != "bad id\nforged" and len(made) == 16


@pytest.mark.django_db
def test_a_refused_report_logs_its_run_and_request_on_both_paths(
    client: Client, json_lines: io.StringIO
) -> None:
    run = make_run(make_case(), ClusterFactory())
    path = f"/api/v1/runs/{run.pk}/report"
    client.post(path, "{}", content_type="application/json", HTTP_X_REQUEST_ID="via-django")
    answer: dict[str, Any] = {}
    wsgi.application(  # the production entry: the fast path answers
        {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b"{}"),
            "CONTENT_LENGTH": "2",
            "CONTENT_TYPE": "application/json",
            "HTTP_X_REQUEST_ID": "via-fast-path",
        },
        lambda status, headers, exc_info=None: answer.update(status=status, headers=headers),
    )
    assert (
        answer["status"].startswith("400")
        and ("X-Request-ID", "via-fast-path") in answer["headers"]
    )
    logged = lines(json_lines, f"Bad Request: {path}")
    assert [(line["request_id"], line["run_id"]) for line in logged] == [
        ("via-django", run.pk),
        ("via-fast-path", run.pk),
    ]


@pytest.mark.django_db
def test_a_task_logs_its_run_and_cluster_and_the_next_task_starts_clean(
    json_lines: io.StringIO,
) -> None:
    cluster = ClusterFactory(name="west-1", enabled=False)
    run = make_run(make_case(), cluster)
    dispatch_run.apply(args=[run.pk])
    assert ProbeRun.objects.get(pk=run.pk).state == RunState.ERROR
    (line,) = lines(json_lines, "dispatch failed")
    assert (line["run_id"], line["cluster"]) == (run.pk, "west-1")
    # The caller's fields are back once the (eager) task is done.
    with log_context(request_id="caller"):
        dispatch_run.apply(args=[run.pk + 1000])
        logging.getLogger("kubeprobe.test").warning("after")
    (after,) = lines(json_lines, "after")
    assert after["request_id"] == "caller" and "run_id" not in after


def test_plain_lines_end_with_the_fields_in_force() -> None:
    record = logging.LogRecord("kubeprobe.test", logging.INFO, __file__, 1, "hello", (), None)
    record.request_id, record.run_id = "r-9", 12
    line = PlainFormatter("%(levelname)s %(message)s").format(record)
    assert line == "INFO hello [request_id=r-9 run_id=12]"


def test_the_setting_picks_the_format_and_refuses_others() -> None:
    code = "import django; django.setup(); import logging; logging.getLogger('x').warning('hi')"
    env = {**os.environ, "KUBEPROBE_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(done.stderr.strip().splitlines()[-1])["message"] == "hi"
    env["KUBEPROBE_LOG_FORMAT"] = "xml"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "KUBEPROBE_LOG_FORMAT must be plain or json" in done.stderr
