"""Generic webhook: the message as JSON, optionally signed with HMAC-SHA256.

Request: ``POST`` (or ``PUT``) to the configured URL with ``Content-Type:
application/json; charset=utf-8`` and these headers:

* ``X-KubeProbe-Event``: the event (firing, resolved, flapping, acknowledged, escalated, test)
* ``X-KubeProbe-Timestamp``: Unix seconds when the request was made (also ``sent_at``)
* ``X-KubeProbe-Signature``: ``sha256=<hex HMAC-SHA256 of the raw body, keyed by the
  secret>``, only when a secret is configured. Receivers compare it in constant time
  and may reject old ``sent_at`` values, which the signature covers.

Body (schema version 1; fields are only ever added)::

    {
      "version": 1,
      "event": "firing",
      "severity": "critical",            # info | warning | critical
      "case": "statefulset-lifecycle",
      "title": "statefulset-lifecycle failed on prod-1: ...",
      "text": "plain multi-line body",
      "hint": "",                         # the diagnosis in one line, or "" (see below)
      "root_cause": "",                   # its category: etcd, apiserver, image, … or ""
      "incident": "",                     # title of the open incident, or ""
      "note": "",                         # suppression / acknowledgement note or ""
      "portal_url": "https://kubeprobe.example.com/alerts/",
      "ended_at": null,                   # RFC 3339 UTC when resolved
      "sent_at": "2025-01-02T03:04:05Z",
      "items": [                          # one per cluster
        {"cluster": "prod-1", "fingerprint": "<sha1>", "step": "create-pod",
         "error": "...", "run_url": "...", "log_url": "...", "events_url": "...",
         "started_at": "2025-01-02T03:00:00Z"}
      ]
    }

Any 2xx answer is success; see :mod:`.http` for how other answers are classified.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rest_framework import serializers

from apps.alerts.transports import http
from apps.alerts.transports.base import (
    HttpUrlField,
    Message,
    Transport,
    TransportConfig,
    header_map,
    hmac_sha256,
    optional_text,
    register,
    utc_iso,
)

SCHEMA_VERSION = 1
# Headers the transport sets itself; configuring them would break signing or parsing.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "x-kubeprobe-signature", "x-kubeprobe-timestamp"}
)


def payload(message: Message, sent_at: datetime) -> dict[str, Any]:
    return {
        "version": SCHEMA_VERSION,
        "event": message.event,
        "severity": message.severity,
        "case": message.case,
        "title": message.title,
        "text": message.text,
        "hint": message.diagnosis,  # the schema only adds fields: the old name stays
        "root_cause": message.root_cause,
        "incident": message.incident,
        "note": message.note,
        "portal_url": message.portal_url,
        "ended_at": utc_iso(message.ended_at) if message.ended_at else None,
        "sent_at": utc_iso(sent_at),
        "items": [
            {
                "cluster": item.cluster,
                "fingerprint": item.fingerprint,
                "step": item.step,
                "error": item.error,
                "run_url": item.run_url,
                "log_url": item.log_url,
                "events_url": item.events_url,
                "started_at": utc_iso(item.started_at),
            }
            for item in message.items
        ],
    }


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac_sha256(secret, body).hex()


class WebhookConfig(TransportConfig):
    url = HttpUrlField(help_text="Where to send the JSON (http or https).")
    method = serializers.ChoiceField(choices=["POST", "PUT"], default="POST")
    secret = optional_text(
        512,
        help_text="If set, each request carries X-KubeProbe-Signature (HMAC-SHA256 of the body).",
    )
    headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=4096),
        required=False,
        default=dict,
        help_text="Extra HTTP headers, e.g. an Authorization header.",
    )

    def validate_headers(self, value: dict[str, str]) -> dict[str, str]:
        header_map(value)
        reserved = sorted(name for name in value if name.lower() in RESERVED_HEADERS)
        if reserved:
            raise serializers.ValidationError(
                f"Set by KubeProbe itself, cannot be configured: {', '.join(reserved)}."
            )
        return value


@register
class WebhookTransport(Transport):
    kind = "webhook"
    label = "Generic webhook"
    Config = WebhookConfig
    secret_fields = ("secret", "headers")
    url_fields = ("url",)

    def send(self, message: Message) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        body = json.dumps(payload(message, now), ensure_ascii=False).encode()
        headers = {
            **self.config["headers"],
            "X-KubeProbe-Event": message.event,
            "X-KubeProbe-Timestamp": str(int(now.timestamp())),
        }
        if self.config["secret"]:
            headers["X-KubeProbe-Signature"] = signature(self.config["secret"], body)
        http.request(self.config["method"], self.config["url"], data=body, headers=headers)
