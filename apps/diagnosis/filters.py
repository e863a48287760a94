"""Filter sets of the diagnosis API (and pages)."""

from __future__ import annotations

import django_filters

from apps.core.filters import FilterSet
from apps.diagnosis.models import Incident, RunDiagnosis


class IncidentFilter(FilterSet):
    case = django_filters.CharFilter(field_name="case__name")
    cluster = django_filters.CharFilter(field_name="cluster__name")

    class Meta:
        model = Incident
        fields = ["state", "scope", "category", "source"]


class RunDiagnosisFilter(FilterSet):
    case = django_filters.CharFilter(field_name="run__case__name")
    cluster = django_filters.CharFilter(field_name="run__cluster__name")
    labelled = django_filters.BooleanFilter(
        field_name="labelled_category", lookup_expr="gt", method="filter_labelled"
    )

    class Meta:
        model = RunDiagnosis
        fields = ["category", "source"]

    def filter_labelled(self, queryset, name, value):  # type: ignore[no-untyped-def]
        return (
            queryset.exclude(labelled_category="")
            if value
            else queryset.filter(labelled_category="")
        )
