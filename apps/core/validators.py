"""Validators shared by models, forms and API serializers."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Kubernetes label syntax: optional DNS-subdomain prefix, a name of 1-63 chars.
_LABEL_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
LABEL_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?" + _LABEL_NAME + "$"
)
LABEL_VALUE_RE = re.compile(r"^" + _LABEL_NAME + "?$")
QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
RESOURCE_SECTIONS = ("requests", "limits")
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")


def validate_env(value: Any) -> None:
    """A mapping of valid env var names to string values."""
    if not isinstance(value, dict):
        raise ValidationError(_("Env must be an object of NAME: value pairs."))
    bad = [k for k in value if not isinstance(k, str) or not ENV_NAME_RE.match(k)]
    if bad:
        raise ValidationError(
            _(
                "Not valid env var names: %(names)s (letters, digits and _; not starting with a digit)."
            ),
            params={"names": ", ".join(map(str, bad))},
        )
    non_str = [k for k, v in value.items() if not isinstance(v, str)]
    if non_str:
        raise ValidationError(
            _("Env values must be strings: %(names)s."), params={"names": ", ".join(non_str)}
        )


def validate_labels(value: Any) -> None:
    """Kubernetes-style labels: {key: value}."""
    if not isinstance(value, dict):
        raise ValidationError(_("Labels must be an object of key: value pairs."))
    for key, val in value.items():
        if not isinstance(key, str) or len(key) > 253 or not LABEL_KEY_RE.match(key):
            raise ValidationError(_("Not a valid label key: %(key)s."), params={"key": key})
        if not isinstance(val, str) or not LABEL_VALUE_RE.match(val):
            raise ValidationError(
                _("Not a valid label value for %(key)s: %(val)s."), params={"key": key, "val": val}
            )


def validate_string_list(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(_("Must be a list of strings."))


def validate_resources(value: Any) -> None:
    """Pod resources: {"requests": {"cpu": "100m"}, "limits": {"memory": "128Mi"}}."""
    if value in (None, {}):
        return
    if not isinstance(value, dict):
        raise ValidationError(_("Resources must be an object with requests and/or limits."))
    for section, quantities in value.items():
        if section not in RESOURCE_SECTIONS:
            raise ValidationError(
                _("Unknown resources section %(s)s (expected requests or limits)."),
                params={"s": section},
            )
        if not isinstance(quantities, dict):
            raise ValidationError(_("resources.%(s)s must be an object."), params={"s": section})
        for name, qty in quantities.items():
            if name not in RESOURCE_NAMES:
                raise ValidationError(
                    _(
                        "Unknown resource %(n)s in %(s)s (expected cpu, memory or ephemeral-storage)."
                    ),
                    params={"n": name, "s": section},
                )
            if not isinstance(qty, str) or not QUANTITY_RE.match(qty):
                raise ValidationError(
                    _("Not a Kubernetes quantity for %(s)s.%(n)s: %(q)s."),
                    params={"s": section, "n": name, "q": qty},
                )
