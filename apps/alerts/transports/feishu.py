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
import time
from typing import Any

from apps.alerts.transports import http
from apps.alerts.transports.base import (
    HttpUrlField,
    Message,
    Transport,
    TransportConfig,
    hmac_sha256,
    optional_text,
    register,
    signature_fields,
)
from apps.alerts.transports.render import (
    MARKDOWN,
    Dialect,
    capped_markdown,
    colour,
    headline,
    markdown_lines,
    message_buttons,
    truncate,
)

TRANSIENT_CODES = frozenset({11232, 11233})
# The whole request must stay under 20 KB.
MAX_MARKDOWN_BYTES = 14000


def sign(secret: str, timestamp: int) -> str:
    """base64 HMAC-SHA256 over an empty message, keyed by "timestamp\\nsecret"."""
    return base64.b64encode(hmac_sha256(f"{timestamp}\n{secret}", b"")).decode()


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
    buttons = [
        _button(text, url, primary=primary) for text, url, primary in message_buttons(message)
    ]
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
    secret = optional_text(256, help_text='The bot\'s "签名校验" secret, if signing is enabled.')


@register
class FeishuTransport(Transport):
    kind = "feishu"
    label = "Feishu / Lark bot"
    Config = FeishuConfig
    secret_fields = ("url", "secret")

    def send(self, message: Message) -> None:
        url = self.config["url"]
        body: dict[str, Any] = signature_fields(self.config["secret"], int(time.time()), sign)
        body.update({"msg_type": "interactive", "card": card(message)})
        response = http.request("POST", url, json_body=body)
        http.check_answer_code(
            response,
            url,
            vendor="Feishu",
            robot="bot",
            code_keys=("code", "StatusCode"),
            message_keys=("msg", "StatusMessage"),
            transient=TRANSIENT_CODES,
            # Feishu's rate limit also comes with other codes, named in the message.
            transient_words=("too many request", "frequency"),
        )
