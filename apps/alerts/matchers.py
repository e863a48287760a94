"""Matchers shared by silences and channel routing: which alerts a rule of thumb applies to.

A matcher is `{"name": <cluster|group|case|case_set|label>, "value": <text>}`;
a `label` value is `key=value`. A list matches when every matcher does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from apps.alerts.models import MATCHER_NAMES


@dataclass(frozen=True)
class Target:
    """What matchers can see of one (case, cluster)."""

    cluster: str
    case: str
    groups: frozenset[str] = field(default_factory=frozenset)
    case_sets: frozenset[str] = field(default_factory=frozenset)
    labels: dict[str, str] = field(default_factory=dict)


def validate_matchers(value: Any, allow_empty: bool = False) -> list[dict[str, str]]:
    """The matchers, or a ValidationError naming the bad entry."""
    if not isinstance(value, list):
        raise ValidationError(_("Matchers must be a list of {name, value} objects."))
    if not value and not allow_empty:
        raise ValidationError(
            _("Give at least one matcher; a silence of everything is a mistake waiting to happen.")
        )
    for index, matcher in enumerate(value):
        n = index + 1
        if not isinstance(matcher, dict) or set(matcher) != {"name", "value"}:
            raise ValidationError(
                _("Matcher %(n)d must be an object with exactly 'name' and 'value'.") % {"n": n}
            )
        name, text = matcher["name"], matcher["value"]
        if name not in MATCHER_NAMES:
            raise ValidationError(
                _("Matcher %(n)d: unknown name %(name)r; use one of %(names)s.")
                % {"n": n, "name": name, "names": ", ".join(MATCHER_NAMES)}
            )
        if not isinstance(text, str) or not text.strip():
            raise ValidationError(_("Matcher %(n)d: value must be a non-empty string.") % {"n": n})
        if name == "label" and ("=" not in text or not text.split("=", 1)[0].strip()):
            raise ValidationError(
                _("Matcher %(n)d: a label matcher's value is key=value, got %(value)r.")
                % {"n": n, "value": text}
            )
    return value


def matches(matchers: list[dict[str, str]], target: Target) -> bool:
    for matcher in matchers:
        name, value = matcher["name"], matcher["value"]
        if name == "cluster" and target.cluster != value:
            return False
        if name == "case" and target.case != value:
            return False
        if name == "group" and value not in target.groups:
            return False
        if name == "case_set" and value not in target.case_sets:
            return False
        if name == "label":
            key, _sep, wanted = value.partition("=")
            if target.labels.get(key.strip()) != wanted.strip():
                return False
    return True
