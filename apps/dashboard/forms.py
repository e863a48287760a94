"""Query-string filters of the matrix pages, read through the API's FilterSets.

Which clusters and cases a page shows is decided by `ClusterFilter` and
`CaseFilter`, the filter sets of /api/v1/clusters/ and /api/v1/cases/, so a
parameter means the same on a page as in the API. Only `state` (which rows,
by their cells) and `group_by` are the pages' own. A bad value is dropped and
shown as an error above the matrix. (The alert action forms are in
apps/alerts/inputs.py.)
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _

from apps.catalog.filters import CaseFilter
from apps.catalog.models import Case
from apps.clusters.filters import ClusterFilter
from apps.clusters.models import Cluster
from apps.dashboard.selectors.matrix import Filters

# The FilterSets' parameters the pages read: those with a control in the filter bar,
# and a few more that links and the API's users may bring along.
CLUSTER_PARAMS = ("q", "group", "region", "environment", "label", "executor", "api_status")
CASE_PARAMS = ("case_set",)
SHOWN_PARAMS = frozenset(
    {"q", "group", "region", "environment", "case_set", "state", "group_by", "columns", "order"}
)
COLUMN_CHOICES = [("", _("scheduled or with results")), ("all", _("every enabled case"))]

STATE_CHOICES = [
    ("", _("any")),
    ("failing", _("failing (a red run)")),
    ("alerting", _("alerting (firing, acknowledged or silenced)")),
    ("firing", _("firing")),
    ("ok", _("all green")),
]
GROUP_BY_CHOICES = [("region", _("region")), ("group", _("cluster group"))]
ORDER_CHOICES = [("", _("name")), ("problems", _("problems first"))]


class PageForm(forms.Form):
    """What only the matrix pages filter on."""

    state = forms.ChoiceField(required=False, choices=STATE_CHOICES)
    group_by = forms.ChoiceField(required=False, choices=GROUP_BY_CHOICES, label=_("Group by"))
    columns = forms.ChoiceField(required=False, choices=COLUMN_CHOICES)
    order = forms.ChoiceField(required=False, choices=ORDER_CHOICES)


def _subset(data: QueryDict, names: tuple[str, ...]) -> dict[str, str]:
    values = ((name, data.get(name, "")) for name in names)
    return {name: str(value) for name, value in values if value != ""}


@dataclass
class FilterForm:
    """The filter bar: values to show again, and errors of the values that were dropped."""

    values: dict[str, str]
    errors: dict[str, list[str]]
    hidden: list[tuple[str, str]]  # accepted parameters without a control, kept on "Apply"
    state_choices = STATE_CHOICES
    group_by_choices = GROUP_BY_CHOICES
    column_choices = COLUMN_CHOICES
    order_choices = ORDER_CHOICES

    @classmethod
    def parse(cls, data: QueryDict) -> tuple[FilterForm, Filters]:
        """The filter bar and the filters; each bad value dropped and named in `errors`."""
        page = PageForm(data)
        page.is_valid()
        # Unbound querysets: here the FilterSets only validate; the selectors filter.
        clusters = ClusterFilter(
            data=_subset(data, CLUSTER_PARAMS), queryset=Cluster.objects.none()
        )
        cases = CaseFilter(data=_subset(data, CASE_PARAMS), queryset=Case.objects.none())
        errors: dict[str, list[str]] = {}
        for form in (clusters.form, cases.form, page):
            errors.update(
                {name: [str(m) for m in messages] for name, messages in form.errors.items()}
            )
        cleaned = getattr(page, "cleaned_data", {})
        cluster_values = {k: v for k, v in clusters.data.items() if k not in errors}
        case_values = {k: v for k, v in cases.data.items() if k not in errors}
        values = {
            **clusters.data,
            **cases.data,
            **_subset(data, ("state", "group_by", "columns", "order")),
        }
        return cls(
            values=values,
            errors=errors,
            hidden=[(k, v) for k, v in values.items() if k not in SHOWN_PARAMS],
        ), Filters(
            clusters=cluster_values,
            cases=case_values,
            state="" if "state" in errors else cleaned.get("state") or "",
            group_by="region" if "group_by" in errors else cleaned.get("group_by") or "region",
            all_cases=cleaned.get("columns") == "all",
            order="" if "order" in errors else cleaned.get("order") or "",
        )
