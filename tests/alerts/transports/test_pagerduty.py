from __future__ import annotations

import pytest

from apps.alerts.transports import PermanentError, TransientError, get, validate_config
from tests.alerts.transports.helpers import PORTAL, Receiver, item, message

KEY = "R0123456789abcdef0123456789ABCDE"


def transport(receiver: Receiver):  # type: ignore[no-untyped-def]
    config = validate_config(
        "pagerduty", {"routing_key": KEY, "events_url": receiver.url("/v2/enqueue")}
    )
    return get("pagerduty")(config)


def accepted(receiver: Receiver) -> None:
    receiver.respond(
        202, {"status": "success", "message": "Event processed", "dedup_key": "fp-prod-1"}
    )


def test_trigger_one_event_per_cluster(receiver: Receiver) -> None:
    accepted(receiver)
    msg = message(
        items=(item("prod-1"), item("prod-2", step="", error="")),
        title="statefulset-lifecycle failed on 2 clusters",
    )
    transport(receiver).send(msg)

    assert [r.path for r in receiver.requests] == ["/v2/enqueue", "/v2/enqueue"]
    run = "https://kubeprobe.example.com/runs/prod-1-42/"
    assert receiver.requests[0].json() == {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "fp-prod-1",
        "payload": {
            "summary": "statefulset-lifecycle failed on prod-1 at step create-pod: "
            "Failed to create pod sandbox: rpc error: code = Unknown",
            "source": "prod-1",
            "severity": "critical",
            "timestamp": "2025-03-04T05:06:07Z",
            "component": "statefulset-lifecycle",
            "group": "prod-1",
            "class": "create-pod",
            "custom_details": {
                "event": "firing",
                "case": "statefulset-lifecycle",
                "cluster": "prod-1",
                "step": "create-pod",
                "error": "Failed to create pod sandbox: rpc error: code = Unknown",
                "diagnosis": "Container runtime on the node is unhealthy",
                "root_cause": "runtime",
                "text": "statefulset-lifecycle failed on prod-1\nstep: create-pod",
                "run_url": run,
                "log_url": run + "#log",
                "events_url": run + "#events",
            },
        },
        "client": "KubeProbe",
        "client_url": PORTAL,
        "links": [
            {"href": run, "text": "Run"},
            {"href": run + "#log", "text": "Pod log"},
            {"href": run + "#events", "text": "Pod events"},
        ],
    }
    second = receiver.requests[1].json()
    assert second["dedup_key"] == "fp-prod-2"
    assert second["payload"]["summary"] == "statefulset-lifecycle failed on prod-2"
    assert second["payload"]["class"] == "probe"


@pytest.mark.parametrize(
    ("event", "action"), [("resolved", "resolve"), ("acknowledged", "acknowledge")]
)
def test_resolve_and_acknowledge_carry_only_the_dedup_key(
    receiver: Receiver, event: str, action: str
) -> None:
    accepted(receiver)
    transport(receiver).send(message(event=event))
    assert receiver.last.json() == {
        "routing_key": KEY,
        "event_action": action,
        "dedup_key": "fp-prod-1",
    }


@pytest.mark.parametrize(("severity", "expected"), [("info", "info"), ("warning", "warning")])
def test_severity_mapping_and_single_item_summary(
    receiver: Receiver, severity: str, expected: str
) -> None:
    accepted(receiver)
    transport(receiver).send(message(severity=severity))
    payload = receiver.last.json()["payload"]
    assert payload["severity"] == expected
    assert (
        payload["summary"] == "statefulset-lifecycle failed on prod-1: Failed to create pod sandbox"
    )


def test_invalid_event_is_permanent_and_throttling_transient(receiver: Receiver) -> None:
    receiver.respond(
        400,
        {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": ["Length of 'routing_key' is incorrect"],
        },
    )
    with pytest.raises(PermanentError, match=r"HTTP 400 from .*Event object is invalid"):
        transport(receiver).send(message())
    receiver.respond(
        429,
        {
            "status": "throttle event",
            "message": "Requests for this service are arriving too quickly.",
        },
    )
    with pytest.raises(TransientError, match="HTTP 429"):
        transport(receiver).send(message())
    receiver.respond(502)
    with pytest.raises(TransientError, match="HTTP 502"):
        transport(receiver).send(message())
