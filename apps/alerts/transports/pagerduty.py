"""PagerDuty Events API v2: one event per (case, cluster) alert, deduplicated by fingerprint.

``firing``, ``escalated``, ``flapping`` and ``test`` trigger (a repeated trigger with the
same ``dedup_key`` joins the open alert), ``acknowledged`` acknowledges and ``resolved``
resolves. The API answers 202 on success, 400 for an invalid event or routing key
(permanent), 429 when throttled and 5xx on its own failures (transient, retried: the
dedup key makes a repeated event harmless).
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext as _
from rest_framework import serializers

from apps.alerts.transports import http
from apps.alerts.transports.base import (
    AlertItem,
    HttpUrlField,
    Message,
    Transport,
    TransportConfig,
    register,
    utc_iso,
)
from apps.alerts.transports.render import item_urls, truncate

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
ACTIONS = {
    "firing": "trigger",
    "escalated": "trigger",
    "flapping": "trigger",
    "test": "trigger",
    "acknowledged": "acknowledge",
    "resolved": "resolve",
}
SEVERITY = {"info": "info", "warning": "warning", "critical": "critical"}
ROUTING_KEY_RE = re.compile(r"^[A-Za-z0-9]{32}$")


def summary(message: Message, item: AlertItem) -> str:
    if len(message.items) <= 1:
        text = message.title
    else:
        text = _("%(case)s failed on %(cluster)s") % {"case": message.case, "cluster": item.cluster}
        if item.step:
            text += " " + _("at step %(step)s") % {"step": item.step}
        if item.error:
            text += f": {item.error.splitlines()[0] if item.error.strip() else item.error}"
    return truncate(" ".join(text.split()), 1024)  # the API's limit for summary


def event(message: Message, item: AlertItem, routing_key: str) -> dict[str, Any]:
    action = ACTIONS.get(message.event, "trigger")
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": item.fingerprint,
    }
    if action != "trigger":
        return body
    details = {
        "event": message.event,
        "case": message.case,
        "cluster": item.cluster,
        "step": item.step,
        "error": truncate(item.error, 4000),
        "diagnosis": message.diagnosis,
        "root_cause": message.root_cause,
        "incident": message.incident,
        "note": message.note,
        "text": truncate(message.text, 8000),
        "run_url": item.run_url,
        "log_url": item.log_url,
        "events_url": item.events_url,
    }
    body["payload"] = {
        "summary": summary(message, item),
        "source": item.cluster or "kubeprobe",
        "severity": SEVERITY.get(message.severity, "error"),
        "timestamp": utc_iso(item.started_at),
        "component": message.case,
        "group": item.cluster or message.case,
        "class": item.step or "probe",
        "custom_details": {k: v for k, v in details.items() if v},
    }
    body["client"] = "KubeProbe"
    if message.portal_url:
        body["client_url"] = message.portal_url
    links = [
        {"href": url, "text": text}
        for text, url in item_urls(item, (_("Run"), _("Pod log"), _("Pod events")))
    ]
    if links:
        body["links"] = links
    return body


class PagerDutyConfig(TransportConfig):
    routing_key = serializers.CharField(
        help_text="The integration key of an Events API v2 integration (32 characters)."
    )
    events_url = HttpUrlField(required=False, default=EVENTS_URL)

    def validate_routing_key(self, value: str) -> str:
        value = value.strip()
        if not ROUTING_KEY_RE.match(value):
            raise serializers.ValidationError(
                "Must be the 32-character integration key of an Events API v2 integration."
            )
        return value


@register
class PagerDutyTransport(Transport):
    kind = "pagerduty"
    label = "PagerDuty (Events v2)"
    Config = PagerDutyConfig
    secret_fields = ("routing_key",)

    def send(self, message: Message) -> None:
        for item in message.items_or_case():
            http.request(
                "POST",
                self.config["events_url"],
                json_body=event(message, item, self.config["routing_key"]),
            )
