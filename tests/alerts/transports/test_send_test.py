"""The admin's "send test" message goes through every HTTP transport's real path."""

from __future__ import annotations

from typing import Any

import pytest

from apps.alerts.transports import get, make_test_message, validate_config
from tests.alerts.transports.helpers import Receiver

KEY = "R0123456789abcdef0123456789ABCDE"


@pytest.mark.parametrize(
    ("kind", "config", "answer"),
    [
        ("webhook", {"url": "{url}/hook"}, ""),
        ("slack", {"url": "{url}/services/T/B/X"}, "ok"),
        (
            "dingtalk",
            {"url": "{url}/robot/send?access_token=t", "secret": "SECx"},
            {"errcode": 0, "errmsg": "ok"},
        ),
        (
            "feishu",
            {"url": "{url}/open-apis/bot/v2/hook/x", "secret": "s"},
            {"code": 0, "msg": "success"},
        ),
        ("wecom", {"url": "{url}/cgi-bin/webhook/send?key=k"}, {"errcode": 0, "errmsg": "ok"}),
        (
            "pagerduty",
            {"routing_key": KEY, "events_url": "{url}/v2/enqueue"},
            {"status": "success"},
        ),
        ("alertmanager", {"url": "{url}"}, ""),
    ],
)
def test_send_test_message(
    receiver: Receiver, kind: str, config: dict[str, Any], answer: Any
) -> None:
    receiver.respond(200, answer)
    base = receiver.url("")
    filled = {k: v.format(url=base) if isinstance(v, str) else v for k, v in config.items()}
    get(kind)(validate_config(kind, filled)).send(
        make_test_message(portal_url="https://kp.example.com/alerts/")
    )
    assert len(receiver.requests) == 1
    assert "test" in receiver.last.body.decode().lower()
