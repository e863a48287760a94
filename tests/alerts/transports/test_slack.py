from __future__ import annotations

import pytest

from apps.alerts.transports import PermanentError, TransientError, get, validate_config
from tests.alerts.transports.helpers import PORTAL, Receiver, item, message


def transport(url: str):  # type: ignore[no-untyped-def]
    return get("slack")(validate_config("slack", {"url": url}))


def test_posts_a_coloured_attachment_with_blocks(receiver: Receiver) -> None:
    receiver.respond(200, "ok")
    msg = message(
        items=(item("prod-1", error="pull <image> & retry"),),
        note="dependency etcd-blackbox is firing on prod-1",
    )
    transport(receiver.url("/services/T000/B000/XXXXXXXX")).send(msg)

    got = receiver.last
    assert (got.method, got.path) == ("POST", "/services/T000/B000/XXXXXXXX")
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    run = "https://kubeprobe.example.com/runs/prod-1-42/"
    title = "[FIRING] statefulset-lifecycle failed on prod-1: Failed to create pod sandbox"
    assert got.json() == {
        "text": title,
        "attachments": [
            {
                "color": "#D32F2F",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": title}},
                    {
                        "type": "section",
                        "fields": [
                            {"type": "mrkdwn", "text": "*Case*\nstatefulset-lifecycle"},
                            {"type": "mrkdwn", "text": "*Severity*\ncritical"},
                            {"type": "mrkdwn", "text": "*Event*\nfiring"},
                            {"type": "mrkdwn", "text": "*Clusters*\nprod-1"},
                        ],
                    },
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": "*prod-1* · step `create-pod`\n"
                            "```pull &lt;image&gt; &amp; retry```\n"
                            f"<{run}|Run> · <{run}#log|Log> · <{run}#events|Events>",
                        },
                    },
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": "*Diagnosis* Container runtime on the node is unhealthy",
                        },
                    },
                    {
                        "type": "context",
                        "elements": [
                            {
                                "type": "mrkdwn",
                                "text": "dependency etcd-blackbox is firing on prod-1",
                            }
                        ],
                    },
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "text": {"type": "plain_text", "text": "Open run"},
                                "url": run,
                            },
                            {
                                "type": "button",
                                "text": {"type": "plain_text", "text": "All alerts"},
                                "url": PORTAL,
                            },
                        ],
                    },
                ],
            }
        ],
    }


def test_resolved_is_green_without_errors_and_long_text_is_cut(receiver: Receiver) -> None:
    clusters = [f"c{i}" for i in range(45)]
    transport(receiver.url()).send(message(*clusters, event="resolved", title="x" * 400))
    body = receiver.last.json()
    attachment = body["attachments"][0]
    assert attachment["color"] == "#2E7D32"
    blocks = attachment["blocks"]
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) == 150
    assert not any("```" in b.get("text", {}).get("text", "") for b in blocks)
    assert {"type": "mrkdwn", "text": "… and 5 more clusters on the portal"} in [
        e for b in blocks if b["type"] == "context" for e in b["elements"]
    ]


@pytest.mark.parametrize(
    ("status", "word"),
    [
        (404, "no_service"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
        (403, "invalid_token"),
    ],
)
def test_slack_errors_are_permanent_with_the_reason(
    receiver: Receiver, status: int, word: str
) -> None:
    receiver.respond(status, word)
    with pytest.raises(PermanentError) as caught:
        transport(receiver.url("/services/T000/B000/XXXXXXXXSECRET")).send(message())
    assert (
        str(caught.value)
        == f"HTTP {status} from http://127.0.0.1:{receiver.port}/services/••••: {word}"
    )


@pytest.mark.parametrize("word", ["invalid_token", "channel_not_found"])
def test_200_with_an_error_word_is_permanent(receiver: Receiver, word: str) -> None:
    receiver.respond(200, word)
    with pytest.raises(PermanentError, match=word):
        transport(receiver.url()).send(message())


def test_500_and_rate_limit_are_transient(receiver: Receiver) -> None:
    receiver.respond(500, "rollup_error")
    with pytest.raises(TransientError):
        transport(receiver.url()).send(message())
    receiver.respond(429, "", headers={"Retry-After": "30"})
    with pytest.raises(TransientError) as caught:
        transport(receiver.url()).send(message())
    assert caught.value.retry_after == 30.0
