"""Prometheus Alertmanager: ``POST /api/v2/alerts`` with one alert per (case, cluster).

Labels identify an alert in Alertmanager (grouping, deduplication, silences,
inhibition), so they hold only what is stable for the alert's whole life:
``alertname`` (``KubeProbeCaseFailing``; ``KubeProbeTest`` for test messages),
``case``, ``cluster``, ``severity`` and the channel's extra labels. Everything that
changes from run to run (the failing step, error text, links) goes in annotations,
which Alertmanager replaces with the latest received.

Alertmanager's client contract: clients re-send active alerts periodically (its docs
suggest every 30 s to 3 min), and an alert whose ``endsAt`` passes without a re-send
resolves by itself. So a firing alert is sent with ``endsAt = now + 4 × resend interval``
(as Prometheus does), and the caller re-sends firing alerts every
:meth:`AlertmanagerTransport.resend_interval` seconds; a resolved alert is sent with
``endsAt`` = the time it ended. Since severity is a label and an alert may have been
escalated, a resolve ends the alert at every severity.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils.translation import gettext as _
from rest_framework import serializers

from apps.alerts.transports import http
from apps.alerts.transports.base import (
    SEVERITIES,
    AlertItem,
    HttpUrlField,
    Message,
    Transport,
    TransportConfig,
    optional_text,
    register,
    require_username_with_password,
    utc_iso,
)
from apps.alerts.transports.render import truncate

ALERTNAME = "KubeProbeCaseFailing"
TEST_ALERTNAME = "KubeProbeTest"
API_PATH = "/api/v2/alerts"
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_LABELS = frozenset({"alertname", "case", "cluster", "severity"})
# How many resend intervals a firing alert survives without being heard of again.
RESEND_MARGIN = 4


def alerts_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(API_PATH) else base + API_PATH


def alert(
    message: Message,
    item: AlertItem,
    *,
    severity: str,
    ends_at: datetime,
    extra_labels: dict[str, str],
) -> dict[str, Any]:
    labels = {
        **extra_labels,
        "alertname": TEST_ALERTNAME if message.event == "test" else ALERTNAME,
        "case": message.case,
        "cluster": item.cluster,
        "severity": severity,
    }
    summary = (
        message.title
        if len(message.items) <= 1
        else _("%(case)s failed on %(cluster)s") % {"case": message.case, "cluster": item.cluster}
    )
    annotations = {
        "summary": truncate(summary, 1000),
        "description": truncate(message.text, 8000),
        "step": item.step,
        "error": truncate(item.error, 4000),
        "diagnosis": message.diagnosis,
        "root_cause": message.root_cause,
        "incident": message.incident,
        "note": message.note,
        "run_url": item.run_url,
        "log_url": item.log_url,
        "events_url": item.events_url,
        "portal_url": message.portal_url,
    }
    body: dict[str, Any] = {
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": utc_iso(item.started_at),
        # Never before startsAt: Alertmanager rejects such an alert.
        "endsAt": utc_iso(max(ends_at, item.started_at)),
    }
    if item.run_url or message.portal_url:
        body["generatorURL"] = item.run_url or message.portal_url
    return body


def alerts(
    message: Message, *, now: datetime, resend_seconds: int, extra_labels: dict[str, str]
) -> list[dict[str, Any]]:
    out = []
    for item in message.items_or_case():
        if message.event == "resolved":
            ended = message.ended_at or now
            out += [
                alert(message, item, severity=sev, ends_at=ended, extra_labels=extra_labels)
                for sev in SEVERITIES
            ]
        else:
            ends = now + timedelta(seconds=RESEND_MARGIN * resend_seconds)
            out.append(
                alert(
                    message,
                    item,
                    severity=message.severity,
                    ends_at=ends,
                    extra_labels=extra_labels,
                )
            )
    return out


class AlertmanagerConfig(TransportConfig):
    url = HttpUrlField(
        help_text="Alertmanager's base URL, e.g. http://alertmanager.monitoring:9093 "
        "(with its route prefix, if any); /api/v2/alerts is appended."
    )
    extra_labels = serializers.DictField(
        child=serializers.CharField(max_length=1024),
        required=False,
        default=dict,
        help_text='Labels added to every alert, e.g. {"team": "platform"}.',
    )
    username = optional_text(256)
    password = optional_text(1024)
    bearer_token = optional_text(4096)
    resend_interval_seconds = serializers.IntegerField(
        required=False,
        default=180,
        min_value=10,
        max_value=86400,
        help_text="How often firing alerts are re-sent; Alertmanager ends an alert that "
        f"is not re-sent within {RESEND_MARGIN} intervals.",
    )

    def validate_extra_labels(self, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(name for name in value if not LABEL_NAME_RE.match(name))
        if bad:
            raise serializers.ValidationError(
                f"Not valid label names: {', '.join(bad)} (letters, digits and _, not starting with a digit)."
            )
        reserved = sorted(RESERVED_LABELS & set(value))
        if reserved:
            raise serializers.ValidationError(f"Set by KubeProbe itself: {', '.join(reserved)}.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("bearer_token") and (attrs.get("username") or attrs.get("password")):
            raise serializers.ValidationError(
                {"bearer_token": "Use either a bearer token or a username and password, not both."}
            )
        require_username_with_password(attrs)
        return attrs


@register
class AlertmanagerTransport(Transport):
    kind = "alertmanager"
    label = "Prometheus Alertmanager"
    Config = AlertmanagerConfig
    secret_fields = ("password", "bearer_token")
    url_fields = ("url",)

    def resend_interval(self) -> float | None:
        return float(self.config["resend_interval_seconds"])

    def send(self, message: Message) -> None:
        body = alerts(
            message,
            now=datetime.now(UTC),
            resend_seconds=self.config["resend_interval_seconds"],
            extra_labels=self.config["extra_labels"],
        )
        headers = {}
        auth = None
        if self.config["bearer_token"]:
            headers["Authorization"] = f"Bearer {self.config['bearer_token']}"
        elif self.config["username"]:
            auth = (self.config["username"], self.config["password"])
        http.request(
            "POST", alerts_url(self.config["url"]), json_body=body, headers=headers, auth=auth
        )
