"""Query-string filters of the matrix pages (the alert action forms are apps/alerts/inputs.py)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import QueryDict

from apps.dashboard.selectors.matrix import Filters

STATE_CHOICES = [
    ("", "any"),
    ("failing", "failing (a red run)"),
    ("alerting", "alerting (firing, acknowledged or silenced)"),
    ("firing", "firing"),
    ("ok", "all green"),
]
GROUP_BY_CHOICES = [("region", "region"), ("group", "cluster group")]


class FilterForm(forms.Form):
    """GET filters shared by the overview, cluster and case pages and state.json."""

    q = forms.CharField(required=False, max_length=100, label="Cluster")
    group = forms.CharField(required=False, max_length=63)
    region = forms.CharField(required=False, max_length=63)
    environment = forms.CharField(required=False, max_length=63)
    case_set = forms.CharField(required=False, max_length=63, label="Case set")
    state = forms.ChoiceField(required=False, choices=STATE_CHOICES)
    group_by = forms.ChoiceField(required=False, choices=GROUP_BY_CHOICES, label="Group by")

    @classmethod
    def parse(cls, data: QueryDict) -> tuple[FilterForm, Filters]:
        """The form (for redisplay and its errors) and the filters, bad fields dropped."""
        form = cls(data)
        form.is_valid()
        cleaned: dict[str, Any] = {
            name: value
            for name, value in getattr(form, "cleaned_data", {}).items()
            if name not in form.errors
        }
        return form, Filters(
            q=(cleaned.get("q") or "").strip(),
            group=cleaned.get("group") or "",
            region=cleaned.get("region") or "",
            environment=cleaned.get("environment") or "",
            case_set=cleaned.get("case_set") or "",
            state=cleaned.get("state") or "",
            group_by=cleaned.get("group_by") or "region",
        )
