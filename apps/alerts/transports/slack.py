"""Slack incoming webhook: one attachment coloured by event and severity, with Block Kit
blocks inside (header, facts, one section per cluster, diagnosis, note, link buttons).

Slack reports webhook errors through the HTTP status with a short text body
(``400 invalid_payload``, ``403 invalid_token``, ``404 no_service``/``channel_not_found``,
``410 channel_is_archived``, ``429``, ``5xx``), which the shared classifier handles.
Slack-compatible receivers sometimes answer 200 with one of those words instead, so a
200 whose body is a known error word is treated as the same permanent error.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

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
    HEX,
    colour,
    error_limit,
    event_name,
    headline,
    item_urls,
    message_buttons,
    severity_name,
    truncate,
)

# Block Kit limits: 50 blocks per message, 150 chars in a header, 3000 in a section.
MAX_BLOCKS = 50
MAX_CLUSTER_SECTIONS = 40
PERMANENT_BODIES = frozenset(
    {
        "invalid_payload",
        "user_not_found",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "invalid_token",
        "channel_not_found",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "channel_is_archived",
        "no_text",
        "too_many_attachments",
    }
)
TRANSIENT_BODIES = frozenset({"rollup_error", "ratelimited", "rate_limited"})


def escape(text: str) -> str:
    """Slack mrkdwn needs only &, < and > escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, text: str) -> str:
    safe_url = url.replace("|", "%7C").replace(">", "%3E")
    return f"<{safe_url}|{escape(text)}>"


def code_block(text: str) -> str:
    return "```" + escape(text).replace("```", "'''") + "```"


def fact(label: str, value: str) -> str:
    return f"*{label}*\n{value}"


def payload(message: Message) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(headline(message), 150)},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": fact(_("Case"), escape(message.case))},
                {"type": "mrkdwn", "text": fact(_("Severity"), severity_name(message.severity))},
                {"type": "mrkdwn", "text": fact(_("Event"), event_name(message.event))},
                {
                    "type": "mrkdwn",
                    "text": truncate(
                        fact(_("Clusters"), escape(", ".join(message.clusters)) or "-"), 2000
                    ),
                },
            ],
        },
    ]
    limit = error_limit(message)
    for item in message.items[:MAX_CLUSTER_SECTIONS]:
        lines = [
            f"*{escape(item.cluster)}*"
            + (" · " + _("step %(step)s") % {"step": f"`{escape(item.step)}`"} if item.step else "")
        ]
        if item.error and message.event != "resolved":
            lines.append(code_block(truncate(item.error, limit)))
        labels = (_("Run"), _("Log"), _("Events"))
        links = [link(url, label) for label, url in item_urls(item, labels)]
        if links:
            lines.append(" · ".join(links))
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate("\n".join(lines), 3000)},
            }
        )
    hidden = len(message.items) - MAX_CLUSTER_SECTIONS
    if hidden > 0:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": ngettext(
                            "… and %(count)d more cluster on the portal",
                            "… and %(count)d more clusters on the portal",
                            hidden,
                        )
                        % {"count": hidden},
                    }
                ],
            }
        )
    if message.diagnosis:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": truncate("*" + _("Diagnosis") + "* " + escape(message.diagnosis), 3000),
                },
            }
        )
    if message.note:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": truncate(escape(message.note), 3000)}],
            }
        )
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": text}, "url": url}
        for text, url, _primary in message_buttons(message)
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return {
        # Top-level text is what notifications and screen readers show.
        "text": truncate(headline(message), 3000),
        "attachments": [{"color": HEX[colour(message)], "blocks": blocks[:MAX_BLOCKS]}],
    }


class SlackConfig(TransportConfig):
    url = HttpUrlField(help_text="The incoming webhook URL (https://hooks.slack.com/services/…).")


@register
class SlackTransport(Transport):
    kind = "slack"
    label = "Slack"
    Config = SlackConfig
    secret_fields = ("url",)

    def send(self, message: Message) -> None:
        url = self.config["url"]
        response = http.request("POST", url, json_body=payload(message))
        word = response.text.strip()
        if word in PERMANENT_BODIES:
            raise PermanentError(f"HTTP {response.status} from {http.redact_url(url)}: {word}")
        if word in TRANSIENT_BODIES:
            raise TransientError(f"HTTP {response.status} from {http.redact_url(url)}: {word}")
