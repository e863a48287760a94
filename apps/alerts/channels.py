"""Channel configuration: create/update with validated, encrypted, masked config; kinds for UIs."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from rest_framework import serializers as drf_serializers
from rest_framework.exceptions import ValidationError as DRFValidationError

from apps.alerts.models import Channel, Severity


def channel_save(
    *,
    name: str,
    kind: str,
    config: dict[str, Any],
    channel: Channel | None = None,
    commit: bool = True,
    **fields: Any,
) -> Channel:
    """Create or update a channel; the config is validated by its transport and stored
    encrypted. Secret fields left out (or masked) keep their stored value. With
    commit=False the channel is validated and filled in but not saved (admin forms)."""
    from apps.alerts.matchers import validate_matchers
    from apps.alerts.transports import base as transports

    current: dict[str, Any] = {}
    if channel is not None and channel.pk and channel.config_json:
        stored = Channel.objects.filter(pk=channel.pk).values_list("kind", "config_json").first()
        if stored and stored[0] == kind and stored[1]:
            current = json.loads(Channel.objects.get(pk=channel.pk).config_json)
    merged = _merge_masked(current, config, kind)
    try:
        validated = transports.validate_config(kind, merged)
    except DRFValidationError as exc:
        raise ChannelConfigError(exc.detail) from None
    channel = channel or Channel()
    channel.name, channel.kind = name, kind
    channel.config_json = json.dumps(validated, default=str)
    for field, value in fields.items():
        setattr(channel, field, value)
    if channel.matchers != []:  # `{}`, `""` and null are no matchers either: refused
        try:
            validate_matchers(channel.matchers, allow_empty=True)
        except ValidationError as exc:
            raise ValidationError({"matchers": exc.messages}) from None
    bad = [s for s in channel.severities or [] if s not in Severity.values]
    if not isinstance(channel.severities, list) or bad:
        raise ValidationError(
            {
                "severities": gettext("A list of %(known)s; unknown: %(bad)s")
                % {"known": ", ".join(Severity.values), "bad": bad}
            }
        )
    if channel.enabled:
        channel.disabled_reason = ""
    channel.full_clean(exclude=["config_json"], validate_unique=commit)
    if commit:
        channel.save()
    return channel


def channel_kinds() -> list[dict[str, Any]]:
    """Every channel kind with its config fields (type, required, secret, default, help),
    so a UI can render the form for it."""
    from apps.alerts.transports import base as transports

    kinds = []
    for kind, label in transports.choices():
        cls = transports.get(kind)
        fields = []
        for name, field in cls.Config().fields.items():
            entry: dict[str, Any] = {
                "name": name,
                "type": _field_type(field),
                "required": bool(field.required),
                "secret": name in cls.secret_fields,
                "help_text": str(field.help_text or ""),
            }
            if field.default is not drf_serializers.empty:
                entry["default"] = field.get_default()
            if isinstance(field, drf_serializers.ChoiceField):
                entry["choices"] = list(field.choices)
            fields.append(entry)
        kinds.append({"kind": kind, "label": label, "fields": fields})
    return kinds


def _field_type(field: Any) -> str:
    from apps.alerts.transports.base import HttpUrlField

    # Subclasses first: a URL or email field is also a CharField.
    for cls, name in (
        (HttpUrlField, "url"),
        (drf_serializers.EmailField, "email"),
        (drf_serializers.ChoiceField, "choice"),
        (drf_serializers.CharField, "string"),
        (drf_serializers.BooleanField, "boolean"),
        (drf_serializers.IntegerField, "integer"),
        (drf_serializers.FloatField, "number"),
        (drf_serializers.ListField, "list"),
        (drf_serializers.DictField, "map"),
    ):
        if isinstance(field, cls):
            return name
    return "string"


class ChannelConfigError(ValidationError):
    """A bad channel kind or config. As a Django ValidationError it names `kind` or
    `config` (sub-fields inside the message, for forms); `detail` keeps the transport's
    nested errors ({"config": {"url": [...]}}) for the API."""

    def __init__(self, detail: Any) -> None:
        if isinstance(detail, dict) and "kind" in detail:
            self.detail: dict[str, Any] = {"kind": detail["kind"]}
        elif isinstance(detail, dict) and set(detail) == {"config"}:
            self.detail = {"config": detail["config"]}
        else:
            self.detail = {"config": detail}
        super().__init__({field: [_flatten(value)] for field, value in self.detail.items()})


def _merge_masked(current: dict[str, Any], sent: Any, kind: str) -> Any:
    """The config to validate: what was sent over what is stored. A value sent back as it
    was shown (••••, a redacted URL, a header map with masked values) keeps the stored one,
    so forms and PATCHes that echo a redacted config never overwrite a secret."""
    from apps.alerts.transports import base as transports

    if not isinstance(sent, dict):
        return sent  # validate_config names it
    shown = transports.redact(current, kind) if current else {}
    merged = dict(current)
    for name, value in sent.items():
        if value == transports.MASK or (name in current and value == shown.get(name)):
            continue
        stored = current.get(name)
        if isinstance(value, dict) and isinstance(stored, dict):
            value = {
                key: stored[key] if item == transports.MASK else item
                for key, item in value.items()
                if item != transports.MASK or key in stored
            }
        merged[name] = value
    return merged


def _flatten(detail: Any, prefix: str = "") -> str:
    if isinstance(detail, dict):
        return "; ".join(_flatten(v, f"{prefix}{k}: ") for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(_flatten(v, prefix) for v in detail)
    return f"{prefix}{detail}"
