"""Feishu / Lark custom bot (自定义机器人): an interactive card, optionally signed.

Signing ("签名校验"): ``timestamp`` is the current time in seconds (as a string) and
``sign`` is base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=b"")); unlike
DingTalk, both go in the JSON body, and Feishu rejects timestamps more than an hour
off. The same webhook API serves Lark (open.larksuite.com); only the host differs.

Feishu answers HTTP 200 with ``{"code": N, "msg": "..."}`` (older deployments also
send ``StatusCode``). Code 0 is success; documented errors:

* transient: 11232 (frequency limited; the bot allows 100/min and 5/s, and fails under
  load at round hours), and anything whose message says the request was rate limited.
* permanent: 9499 (bad request, e.g. body over 20 KB), 19001 (invalid webhook token),
  19021 (signature mismatch or timestamp out of range), 19022 (IP not allowed),
  19024 (keyword not found), and any other non-zero code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from rest_framework import serializers

from apps.alerts.transports import http
from apps.alerts.transports.base import (
    HttpUrlField,
    Message,
    PermanentError,
    TransientError,
    Transport,
    TransportConfig,
    register,
)
from apps.alerts.transports.render import (
    MARKDOWN,
    Dialect,
    capped_markdown,
    colour,
    headline,
    markdown_lines,
    truncate,
)

TRANSIENT_CODES = frozenset({11232, 11233})
# The whole request must stay under 20 KB.
MAX_MARKDOWN_BYTES = 14000


def sign(secret: str, timestamp: int) -> str:
    """base64 HMAC-SHA256 over an empty message, keyed by "timestamp\\nsecret"."""
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _escape(text: str) -> str:
    # lark_md reads < and > as tags (<at>, <font>); entities show them literally.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


LARK_MD = Dialect(
    link=MARKDOWN.link,
    bold=MARKDOWN.bold,
    code=MARKDOWN.code,
    # lark_md has no block quotes; an indented line keeps the error apart.
    quote=lambda t: "\n".join(f"    {line}" for line in t.splitlines() or [""]),
    escape=_escape,
)


def card(message: Message) -> dict[str, Any]:
    lines = markdown_lines(message, LARK_MD)
    elements: list[dict[str, Any]] = [
        {
            "tag": "div",
            "text": {
                "tag": "lark_md",
                "content": capped_markdown(
                    lines, MAX_MARKDOWN_BYTES, portal_url=message.portal_url
                ),
            },
        }
    ]
    buttons = []
    if message.items and message.items[0].run_url:
        buttons.append(_button("Open run", message.items[0].run_url, primary=True))
    if message.portal_url:
        buttons.append(_button("All alerts", message.portal_url, primary=False))
    if buttons:
        elements.append({"tag": "action", "actions": buttons})
    return {
        "config": {"wide_screen_mode": True},
        "header": {
            "title": {"tag": "plain_text", "content": truncate(headline(message), 200)},
            "template": colour(message),
        },
        "elements": elements,
    }


def _button(text: str, url: str, *, primary: bool) -> dict[str, Any]:
    return {
        "tag": "button",
        "text": {"tag": "plain_text", "content": text},
        "type": "primary" if primary else "default",
        "url": url,
    }


class FeishuConfig(TransportConfig):
    url = HttpUrlField(
        help_text="The bot webhook, https://open.feishu.cn/open-apis/bot/v2/hook/… (or larksuite.com)."
    )
    secret = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=256,
        help_text='The bot\'s "签名校验" secret, if signing is enabled.',
    )


@register
class FeishuTransport(Transport):
    kind = "feishu"
    label = "Feishu / Lark bot"
    Config = FeishuConfig
    secret_fields = ("url", "secret")

    def send(self, message: Message) -> None:
        url = self.config["url"]
        body: dict[str, Any] = {}
        if self.config["secret"]:
            timestamp = int(time.time())
            body = {"timestamp": str(timestamp), "sign": sign(self.config["secret"], timestamp)}
        body.update({"msg_type": "interactive", "card": card(message)})
        response = http.request("POST", url, json_body=body)
        answer = response.json()
        if not isinstance(answer, dict) or not ({"code", "StatusCode"} & set(answer)):
            # The bot API always answers JSON with a code; anything else is not the bot.
            raise PermanentError(
                f"HTTP {response.status} from {http.redact_url(url)} without Feishu's code: "
                f"{http.snippet(response.text, url, limit=120) or '(empty body)'}; is this a Feishu bot URL?"
            )
        try:
            code = int(answer.get("code", answer.get("StatusCode")) or 0)
        except (TypeError, ValueError):
            code = -1
        if code == 0:
            return
        detail = http.snippet(str(answer.get("msg") or answer.get("StatusMessage") or ""), url)
        text = f"Feishu error {code} from {http.redact_url(url)}: {detail}"
        lowered = detail.lower()
        if code in TRANSIENT_CODES or "too many request" in lowered or "frequency" in lowered:
            raise TransientError(text)
        raise PermanentError(text)
