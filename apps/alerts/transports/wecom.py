"""WeCom (企业微信) group robot: a markdown message to the webhook with the robot ``key``.

WeCom answers HTTP 200 with ``{"errcode": N, "errmsg": "..."}``; 0 is success.
Documented errors classified here:

* transient: -1 (system busy), 45009 (API call frequency over the limit; a robot may
  send 20 messages a minute), 45033 (too many concurrent calls).
* permanent: anything else, notably 93000 (invalid webhook URL / key), 93004 (robot
  disabled), 40008/40058 (invalid message, e.g. markdown over 4096 bytes).
"""

from __future__ import annotations

from typing import Any

from apps.alerts.transports import http
from apps.alerts.transports.base import (
    HttpUrlField,
    Message,
    Transport,
    TransportConfig,
    register,
    require_query_param,
)
from apps.alerts.transports.render import capped_markdown, colour, event_label, markdown_lines

TRANSIENT_CODES = frozenset({-1, 45009, 45033})
MAX_MARKDOWN_BYTES = 4096
# WeCom markdown colours are named: warning (orange), info (green), comment (grey).
FONT_COLOURS = {"red": "warning", "orange": "warning", "yellow": "warning", "green": "info"}


def payload(message: Message) -> dict[str, Any]:
    label = event_label(message.event)
    font = FONT_COLOURS.get(colour(message), "comment")
    head = f'### <font color="{font}">[{label}]</font> {message.title}'
    lines = [head, *markdown_lines(message)]
    return {
        "msgtype": "markdown",
        "markdown": {
            "content": capped_markdown(lines, MAX_MARKDOWN_BYTES, portal_url=message.portal_url)
        },
    }


class WeComConfig(TransportConfig):
    url = HttpUrlField(
        help_text="The robot webhook, https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…"
    )

    def validate_url(self, value: str) -> str:
        require_query_param(value, "key")
        return value


@register
class WeComTransport(Transport):
    kind = "wecom"
    label = "WeCom robot"
    Config = WeComConfig
    secret_fields = ("url",)

    def send(self, message: Message) -> None:
        url = self.config["url"]
        response = http.request("POST", url, json_body=payload(message))
        http.check_answer_code(response, url, vendor="WeCom", transient=TRANSIENT_CODES)
