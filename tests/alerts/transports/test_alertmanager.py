from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import time_machine

from apps.alerts.transports import PermanentError, TransientError, get, validate_config
from tests.alerts.transports.helpers import ENDED, PORTAL, Receiver, item, message
from tests.utils import wait_for

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
NOW = datetime(2025, 3, 4, 5, 10, 0, tzinfo=UTC)
RUN = "https://kubeprobe.example.com/runs/prod-1-42/"


def transport(**config: Any):  # type: ignore[no-untyped-def]
    return get("alertmanager")(validate_config("alertmanager", config))


# -- exact payload, against a recording receiver -----------------------------------------


@time_machine.travel(NOW, tick=False)
def test_firing_alert_payload_with_basic_auth(receiver: Receiver) -> None:
    am = transport(
        url=receiver.url("/am/"),
        extra_labels={"team": "platform"},
        username="kp",
        password="pw",
        resend_interval_seconds=60,
    )
    am.send(message(note="acknowledged by alice"))
    got = receiver.last
    assert (got.method, got.path) == ("POST", "/am/api/v2/alerts")
    assert got.headers["authorization"] == "Basic " + base64.b64encode(b"kp:pw").decode()
    assert got.json() == [
        {
            "labels": {
                "team": "platform",
                "alertname": "KubeProbeCaseFailing",
                "case": "statefulset-lifecycle",
                "cluster": "prod-1",
                "severity": "critical",
            },
            "annotations": {
                "summary": "statefulset-lifecycle failed on prod-1: Failed to create pod sandbox",
                "description": "statefulset-lifecycle failed on prod-1\nstep: create-pod",
                "step": "create-pod",
                "error": "Failed to create pod sandbox: rpc error: code = Unknown",
                "diagnosis": "Container runtime on the node is unhealthy",
                "root_cause": "runtime",
                "note": "acknowledged by alice",
                "run_url": RUN,
                "log_url": RUN + "#log",
                "events_url": RUN + "#events",
                "portal_url": PORTAL,
            },
            "startsAt": "2025-03-04T05:06:07Z",
            # Four resend intervals: the alert survives a few missed re-sends.
            "endsAt": "2025-03-04T05:14:00Z",
            "generatorURL": RUN,
        }
    ]
    assert am.resend_interval() == 60.0


def test_resolved_ends_the_alert_at_every_severity_with_bearer(receiver: Receiver) -> None:
    transport(url=receiver.url("/api/v2/alerts"), bearer_token="tkn").send(
        message(event="resolved", ended_at=ENDED)
    )
    got = receiver.last
    assert got.path == "/api/v2/alerts"
    assert got.headers["authorization"] == "Bearer tkn"
    alerts = got.json()
    assert [a["labels"]["severity"] for a in alerts] == ["info", "warning", "critical"]
    assert {a["endsAt"] for a in alerts} == {"2025-03-04T06:00:00Z"}


def test_errors(receiver: Receiver) -> None:
    receiver.respond(400, '"start time must be before end time"')
    with pytest.raises(PermanentError, match=r"HTTP 400 .*start time must be before end time"):
        transport(url=receiver.url("")).send(message())
    receiver.respond(401, "Unauthorized")
    with pytest.raises(PermanentError, match="HTTP 401"):
        transport(url=receiver.url("")).send(message())
    receiver.respond(503)
    with pytest.raises(TransientError):
        transport(url=receiver.url("")).send(message())


# -- a real Alertmanager -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read() or b"null")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _start(config: Path, storage: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start Alertmanager; return once it is ready or has exited."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as log_file:  # a file, not a pipe nobody drains
        proc = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # no gossip port: a single instance
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        wait_for(lambda: _ready(url) or proc.poll() is not None, timeout=30, what="alertmanager")
    except AssertionError:
        proc.kill()
        proc.wait()
        raise
    return proc, url


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager (Debian's prometheus-alertmanager) on a free 127.0.0.1 port."""
    if not shutil.which(ALERTMANAGER):
        missing = f"{ALERTMANAGER} is missing (apt-get install prometheus-alertmanager)"
        if os.environ.get("CI"):  # .ci/run installs it: missing there is a CI bug
            pytest.fail(missing)
        pytest.skip(missing)
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n"
    )
    proc, url, error = None, "", ""
    for _attempt in range(3):  # the port may be taken between choosing and binding it
        proc, url = _start(config, tmp_path / "data", tmp_path / "alertmanager.log")
        if proc.poll() is None:
            break
        error = (tmp_path / "alertmanager.log").read_text(errors="replace")
    if proc is None or proc.poll() is not None:
        pytest.fail(f"alertmanager did not start: {error}")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _active(url: str, case: str) -> list[dict[str, Any]]:
    query = quote(f'case="{case}"')
    return list(_get(f"{url}/api/v2/alerts?filter={query}"))


def test_alert_appears_in_alertmanager_and_later_resolves(alertmanager: str) -> None:
    case = "statefulset-lifecycle"
    started = datetime.now(UTC) - timedelta(minutes=3)
    msg = message(
        "prod-1",
        "prod-2",
        items=(item("prod-1", started_at=started), item("prod-2", started_at=started)),
    )
    am = transport(url=alertmanager, extra_labels={"team": "platform"})

    am.send(msg)
    alerts = wait_for(
        lambda: len(_active(alertmanager, case)) == 2 and _active(alertmanager, case),
        what="two active alerts",
    )
    by_cluster = {a["labels"]["cluster"]: a for a in alerts}
    assert set(by_cluster) == {"prod-1", "prod-2"}
    first = by_cluster["prod-1"]
    assert first["labels"] == {
        "alertname": "KubeProbeCaseFailing",
        "case": case,
        "cluster": "prod-1",
        "severity": "critical",
        "team": "platform",
    }
    assert first["annotations"]["step"] == "create-pod"
    assert first["annotations"]["run_url"] == RUN
    assert first["generatorURL"] == RUN
    assert first["status"]["state"] == "active"

    # Only prod-1 recovers: it leaves the active list, prod-2 stays.
    am.send(
        message(
            event="resolved",
            items=(item("prod-1", started_at=started),),
            ended_at=datetime.now(UTC),
        )
    )
    wait_for(
        lambda: [a["labels"]["cluster"] for a in _active(alertmanager, case)] == ["prod-2"],
        what="prod-1 resolved",
    )
