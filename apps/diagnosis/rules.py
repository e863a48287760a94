"""The rule tree: from what is known about a failed run to its root cause.

Pure functions, no database: `Evidence` gathers everything known about a
failure (the case's kind and name, the failing step, the error text, the
pod's reasons and events); `first_match()` walks the ordered rules and the
first whose conditions all hold names the category. Specific signatures come
before general ones, and rules scoped to a case kind come before the
catch-alls, so an etcd case's "connection refused" is etcd, not the API server.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from apps.diagnosis.models import RULE_PATTERNS, DiagnosisRule


@dataclass(frozen=True)
class Evidence:
    """What a diagnosis is made from (and shows as its evidence)."""

    case_kind: str = ""  # built-in case module (etcd, lifecycle, …) or the template's name
    template_kind: str = ""  # probe | inspection
    case: str = ""
    step: str = ""
    error: str = ""
    reasons: tuple[str, ...] = ()  # pod/container reasons and their messages
    events: tuple[str, ...] = ()  # "Warning FailedScheduling: 0/3 nodes are available…"
    node: str = ""

    @property
    def text(self) -> str:
        """Everything an error pattern is matched against."""
        return "\n".join((self.error, *self.reasons, *self.events))

    def as_json(self) -> dict[str, Any]:
        return {
            "case_kind": self.case_kind,
            "template_kind": self.template_kind,
            "case": self.case,
            "step": self.step,
            "error": self.error[:4000],
            "reasons": list(self.reasons),
            "events": list(self.events[:20]),
            "node": self.node,
        }


@dataclass(frozen=True)
class RuleSpec:
    name: str
    category: str
    summary: str
    confidence: float = 0.8
    component: str = ""
    case_kinds: tuple[str, ...] = ()
    template_kind: str = ""
    case_pattern: str = ""
    step_pattern: str = ""
    error_pattern: str = ""
    reason_pattern: str = ""
    event_pattern: str = ""
    order: int = 1000
    pk: int | None = field(default=None, compare=False)

    @classmethod
    def of(cls, rule: DiagnosisRule) -> RuleSpec:
        return cls(
            name=rule.name,
            category=rule.category,
            summary=rule.summary,
            confidence=rule.confidence,
            component=rule.component,
            case_kinds=tuple(rule.case_kinds or ()),
            template_kind=rule.template_kind,
            order=rule.order,
            pk=rule.pk,
            **{f: getattr(rule, f) for f in RULE_PATTERNS},
        )


@lru_cache(maxsize=2048)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def pattern_error(pattern: str) -> str:
    """Why a rule's pattern is not a valid regular expression ("" if it is)."""
    if not pattern:
        return ""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"Not a valid regular expression: {exc}."
    return ""


def matches(rule: RuleSpec, evidence: Evidence) -> bool:
    if rule.case_kinds and evidence.case_kind not in rule.case_kinds:
        return False
    if rule.template_kind and evidence.template_kind != rule.template_kind:
        return False
    checks = (
        (rule.case_pattern, evidence.case),
        (rule.step_pattern, evidence.step),
        (rule.error_pattern, evidence.text),
        (rule.reason_pattern, "\n".join(evidence.reasons)),
        (rule.event_pattern, "\n".join(evidence.events)),
    )
    return all(_compiled(p).search(text) for p, text in checks if p)


def first_match(rules: list[RuleSpec], evidence: Evidence) -> RuleSpec | None:
    """The first rule, in order, whose conditions all hold."""
    return next((r for r in rules if matches(r, evidence)), None)


_VARIABLE = (
    (re.compile(r"https?://\S+"), "<url>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b"), "<ip>"),
    (re.compile(r"\bkubeprobe-[a-z]+-[a-z0-9-]+"), "<object>"),
    (re.compile(r"\b[a-z0-9]+(-[a-z0-9]+)*-[a-z0-9]{5,10}\b"), "<name>"),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def signature(*, category: str, step: str, error: str, cluster_names: tuple[str, ...] = ()) -> str:
    """A failure's identity across clusters: the category, the step and the error's
    first line with its variable parts (names, addresses, numbers) removed."""
    text = (error.strip().splitlines() or [""])[0].lower()
    for name in cluster_names:
        if name:
            text = text.replace(name.lower(), "<cluster>")
    for pattern, token in _VARIABLE:
        text = pattern.sub(token, text)
    raw = f"{category}|{step.lower()}|{text[:300]}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]
