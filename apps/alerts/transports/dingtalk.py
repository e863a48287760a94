"""DingTalk custom robot (自定义机器人): markdown message, optionally signed.

Signing ("加签"): ``timestamp`` is the current time in milliseconds, ``sign`` is
base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")), both sent as query
parameters next to ``access_token`` (URL-encoded; DingTalk rejects signatures older
than an hour).

DingTalk answers HTTP 200 with ``{"errcode": N, "errmsg": "..."}``. ``errcode`` 0 is
success; the robot's documented errors are classified here:

* transient: -1 system busy, 130101 "send too fast" (more than 20 messages a minute
  throttles the robot for 10 minutes), 410100 rate limited, 90030 webhook call quota.
* permanent: anything else, notably 310000 (keyword, signature or IP allow-list check
  failed), 300001 / 400101 (token does not exist), 400102 (robot disabled),
  400106 (robot does not exist), 400013 (group dissolved), 43xxxx (content refused).
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

from rest_framework import serializers

from apps.alerts.transports import http
from apps.alerts.transports.base import (
    HttpUrlField,
    Message,
    Transport,
    TransportConfig,
    hmac_sha256,
    optional_text,
    register,
    require_query_param,
    signature_fields,
)
from apps.alerts.transports.render import (
    HEX,
    capped_markdown,
    colour,
    event_label,
    headline,
    markdown_lines,
    truncate,
)

TRANSIENT_CODES = frozenset({-1, 130101, 410100, 90030})
MAX_TEXT_BYTES = 15000
MOBILE_RE = re.compile(r"^\+?[0-9][0-9-]{4,19}$")


def sign(secret: str, timestamp_ms: int) -> str:
    """base64 HMAC-SHA256 of "timestamp\\nsecret" keyed by the secret (not yet URL-encoded)."""
    return base64.b64encode(hmac_sha256(secret, f"{timestamp_ms}\n{secret}")).decode()


def payload(message: Message, *, at_mobiles: list[str], at_all: bool) -> dict[str, Any]:
    label = event_label(message.event)
    head = f'#### <font color="{HEX[colour(message)]}">[{label}]</font> {message.title}'
    lines = [head, *markdown_lines(message)]
    if at_mobiles:
        # A markdown message only highlights mentions that also appear in its text.
        lines.append(" ".join(f"@{mobile}" for mobile in at_mobiles))
    return {
        "msgtype": "markdown",
        "markdown": {
            "title": truncate(headline(message), 100),
            "text": capped_markdown(lines, MAX_TEXT_BYTES, portal_url=message.portal_url),
        },
        "at": {"atMobiles": at_mobiles, "isAtAll": at_all},
    }


class DingTalkConfig(TransportConfig):
    url = HttpUrlField(
        help_text="The robot webhook, https://oapi.dingtalk.com/robot/send?access_token=…"
    )
    secret = optional_text(
        256, help_text='The robot\'s "加签" secret (SEC…), if signing is enabled.'
    )
    at_mobiles = serializers.ListField(
        child=serializers.CharField(max_length=20),
        required=False,
        default=list,
        max_length=50,
        help_text="Phone numbers of group members to @mention.",
    )
    at_all = serializers.BooleanField(required=False, default=False)

    def validate_url(self, value: str) -> str:
        require_query_param(value, "access_token")
        return value

    def validate_at_mobiles(self, value: list[str]) -> list[str]:
        bad = [m for m in value if not MOBILE_RE.match(m)]
        if bad:
            raise serializers.ValidationError(f"Not phone numbers: {', '.join(bad)}.")
        return value


@register
class DingTalkTransport(Transport):
    kind = "dingtalk"
    label = "DingTalk robot"
    Config = DingTalkConfig
    secret_fields = ("url", "secret")

    def send(self, message: Message) -> None:
        url = self.config["url"]
        params = signature_fields(self.config["secret"], int(time.time() * 1000), sign)
        body = payload(message, at_mobiles=self.config["at_mobiles"], at_all=self.config["at_all"])
        response = http.request("POST", url, json_body=body, params=params)
        http.check_answer_code(response, url, vendor="DingTalk", transient=TRANSIENT_CODES)
