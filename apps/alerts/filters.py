"""Filter sets of the alerts API."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.alerts.models import (
    PROBLEM_STATES,
    Alert,
    AlertRule,
    AlertState,
    Channel,
    Severity,
    Silence,
)
from apps.core.filters import FilterSet


class AlertFilter(FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=AlertState.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    cluster = django_filters.CharFilter(field_name="cluster__name")
    case = django_filters.CharFilter(field_name="case__name")
    open = django_filters.BooleanFilter(
        method="filter_open", label=_("Open: firing, acknowledged or silenced")
    )
    escalated = django_filters.BooleanFilter()
    flapping = django_filters.BooleanFilter(
        field_name="flapping_since", lookup_expr="isnull", exclude=True
    )

    class Meta:
        model = Alert
        fields = ["state", "severity", "cluster", "case", "escalated"]

    def filter_open(self, queryset: QuerySet[Alert], name: str, value: bool) -> QuerySet[Alert]:
        if value:
            return queryset.filter(state__in=PROBLEM_STATES)
        return queryset.exclude(state__in=PROBLEM_STATES)


class SilenceFilter(FilterSet):
    active = django_filters.BooleanFilter(method="filter_active", label=_("In force now"))
    created_by = django_filters.CharFilter(field_name="created_by__username")

    class Meta:
        model = Silence
        fields = ["active", "created_by"]

    def filter_active(
        self, queryset: QuerySet[Silence], name: str, value: bool
    ) -> QuerySet[Silence]:
        now = timezone.now()
        active = {"starts_at__lte": now, "ends_at__gt": now}
        return queryset.filter(**active) if value else queryset.exclude(**active)


class AlertRuleFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    enabled = django_filters.BooleanFilter()
    severity = django_filters.ChoiceFilter(choices=Severity.choices)
    binding = django_filters.CharFilter(field_name="binding__name")
    case = django_filters.CharFilter(field_name="case__name")
    cluster = django_filters.CharFilter(field_name="cluster__name")
    group = django_filters.CharFilter(field_name="group__name")

    class Meta:
        model = AlertRule
        fields = ["name", "enabled", "severity"]


class ChannelFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    kind = django_filters.CharFilter()
    enabled = django_filters.BooleanFilter()

    class Meta:
        model = Channel
        fields = ["name", "kind", "enabled"]
