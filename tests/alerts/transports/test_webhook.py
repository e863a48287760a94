from __future__ import annotations

import hashlib
import hmac
import time

import pytest
import time_machine

from apps.alerts.transports import PermanentError, TransientError, get, validate_config
from apps.alerts.transports.http import user_agent
from tests.alerts.transports.helpers import ENDED, PORTAL, Receiver, message

NOW = "2025-03-04T05:10:00Z"


def transport(**config):  # type: ignore[no-untyped-def]
    cls = get("webhook")
    return cls(validate_config("webhook", config))


EXPECTED_ITEM = {
    "cluster": "prod-1",
    "fingerprint": "fp-prod-1",
    "step": "create-pod",
    "error": "Failed to create pod sandbox: rpc error: code = Unknown",
    "run_url": "https://kubeprobe.example.com/runs/prod-1-42/",
    "log_url": "https://kubeprobe.example.com/runs/prod-1-42/#log",
    "events_url": "https://kubeprobe.example.com/runs/prod-1-42/#events",
    "started_at": "2025-03-04T05:06:07Z",
}


@time_machine.travel(NOW, tick=False)
def test_posts_the_documented_json_signed_with_hmac(receiver: Receiver) -> None:
    transport(url=receiver.url("/hooks/kp?x=1"), secret="s3cret", headers={"X-Team": "infra"}).send(
        message(note="dependency etcd-blackbox is firing on prod-1")
    )

    got = receiver.last
    assert (got.method, got.path, got.query) == ("POST", "/hooks/kp", {"x": ["1"]})
    assert got.json() == {
        "version": 1,
        "event": "firing",
        "severity": "critical",
        "case": "statefulset-lifecycle",
        "title": "statefulset-lifecycle failed on prod-1: Failed to create pod sandbox",
        "text": "statefulset-lifecycle failed on prod-1\nstep: create-pod",
        "hint": "Container runtime on the node is unhealthy",
        "root_cause": "runtime",
        "incident": "",
        "note": "dependency etcd-blackbox is firing on prod-1",
        "portal_url": PORTAL,
        "ended_at": None,
        "sent_at": NOW,
        "items": [EXPECTED_ITEM],
    }
    expected_sig = hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
    assert got.headers["x-kubeprobe-signature"] == f"sha256={expected_sig}"
    assert got.headers["x-kubeprobe-timestamp"] == str(int(time.time()))
    assert got.headers["x-kubeprobe-event"] == "firing"
    assert got.headers["x-team"] == "infra"
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    assert got.headers["user-agent"] == user_agent()
    assert user_agent().startswith("KubeProbe")


def test_without_secret_no_signature_and_put_and_resolved(receiver: Receiver) -> None:
    transport(url=receiver.url(), method="PUT").send(
        message("prod-1", "prod-2", event="resolved", ended_at=ENDED)
    )
    got = receiver.last
    assert got.method == "PUT"
    assert "x-kubeprobe-signature" not in got.headers
    body = got.json()
    assert body["event"] == "resolved"
    assert body["ended_at"] == "2025-03-04T06:00:00Z"
    assert [i["cluster"] for i in body["items"]] == ["prod-1", "prod-2"]


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_server_errors_and_throttling_are_transient(receiver: Receiver, status: int) -> None:
    receiver.respond(status, "try later", headers={"Retry-After": "7"})
    with pytest.raises(TransientError) as caught:
        transport(url=receiver.url()).send(message())
    assert f"HTTP {status}" in str(caught.value)
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_client_errors_are_permanent_and_redacted(receiver: Receiver, status: int) -> None:
    url = receiver.url("/hook/T0123/B0123/abcdefghijklmnop?token=tok-very-secret")
    receiver.respond(status, "bad token tok-very-secret for /hook/T0123/B0123/abcdefghijklmnop")
    with pytest.raises(PermanentError) as caught:
        transport(url=url).send(message())
    text = str(caught.value)
    assert text.startswith(
        f"HTTP {status} from http://127.0.0.1:{receiver.port}/hook/••••?token=••••"
    )
    assert "tok-very-secret" not in text
    assert "abcdefghijklmnop" not in text


def test_redirect_is_permanent_and_not_followed(receiver: Receiver) -> None:
    receiver.respond(301, headers={"Location": "https://elsewhere.example/new?k=secret"})
    with pytest.raises(
        PermanentError, match=r"redirected to https://elsewhere.example/new\?k=••••"
    ):
        transport(url=receiver.url()).send(message())
    assert len(receiver.requests) == 1


def test_timeout_is_transient_and_bounded(receiver: Receiver, short_timeout: float) -> None:
    receiver.respond(200, delay=10)
    start = time.monotonic()
    with pytest.raises(TransientError, match=r"No answer from .* within 0.5s"):
        transport(url=receiver.url()).send(message())
    assert time.monotonic() - start < 3


def test_connection_refused_is_transient() -> None:
    server = Receiver()
    url = server.url()
    server.stop()
    with pytest.raises(TransientError, match=r"Could not connect to .*: connection refused"):
        transport(url=url).send(message())
