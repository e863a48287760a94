"""The rule named `default`: created by a migration, and again after every `migrate`
or `flush` (post_migrate), so an installation never runs without one. An operator's
edits to it are kept: only a missing rule is created."""

from __future__ import annotations

from typing import Any

DEFAULT_RULE_FIELDS: dict[str, Any] = {
    "description": (
        "Applies where no more specific rule does: two failed runs in a row fire, "
        "one success resolves, and a probe with no result for 3 schedule periods "
        "is an alert too."
    ),
    "consecutive_failures": 2,
    "stale_factor": 3.0,
    "resolve_after_successes": 1,
    "severity": "warning",
    "flap_threshold": 6,
}


def ensure_default_rule(rule_model: Any) -> None:
    rule_model.objects.get_or_create(name="default", defaults=DEFAULT_RULE_FIELDS)


def ensure_default_rule_post_migrate(**kwargs: Any) -> None:
    from apps.alerts.models import AlertRule

    ensure_default_rule(AlertRule)
