"""Filter sets shared by the API and the UI."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from apps.clusters.models import ApiStatus, Cluster, ClusterGroup, Executor
from apps.clusters.selectors import cluster_group_resolve
from apps.core.db import JSONKeyText
from apps.core.filters import FilterSet


class ClusterFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    q = django_filters.CharFilter(
        method="filter_q", max_length=100, label="Name or display name contains"
    )
    region = django_filters.CharFilter()
    environment = django_filters.CharFilter()
    executor = django_filters.ChoiceFilter(choices=Executor.choices)
    enabled = django_filters.BooleanFilter()
    api_status = django_filters.ChoiceFilter(choices=[c for c in ApiStatus.choices if c[0]])
    api_version = django_filters.CharFilter()
    unreachable = django_filters.BooleanFilter(
        field_name="breaker_open_since",
        lookup_expr="isnull",
        exclude=True,
        label="Circuit breaker open (the cluster is unreachable)",
    )
    label = django_filters.CharFilter(method="filter_label", label="Label key=value")
    group = django_filters.CharFilter(method="filter_group", label="Cluster group name")

    class Meta:
        model = Cluster
        fields = [
            "name",
            "region",
            "environment",
            "executor",
            "enabled",
            "api_status",
            "api_version",
        ]

    def filter_q(self, queryset: QuerySet[Cluster], name: str, value: str) -> QuerySet[Cluster]:
        text = value.strip()
        if not text:
            return queryset
        return queryset.filter(Q(name__icontains=text) | Q(display_name__icontains=text))

    def filter_label(self, queryset: QuerySet[Cluster], name: str, value: str) -> QuerySet[Cluster]:
        key, sep, val = value.partition("=")
        if not sep:
            return queryset.alias(_lbl=JSONKeyText(key, "labels")).filter(_lbl__isnull=False)
        return queryset.alias(_lbl=JSONKeyText(key, "labels")).filter(_lbl=val)

    def filter_group(self, queryset: QuerySet[Cluster], name: str, value: str) -> QuerySet[Cluster]:
        group = ClusterGroup.objects.filter(name=value).first()
        if group is None:
            return queryset.none()
        return queryset.filter(pk__in=cluster_group_resolve(group=group).values("pk"))


class ClusterGroupFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    member = django_filters.CharFilter(field_name="members__name", label="Explicit member name")

    class Meta:
        model = ClusterGroup
        fields = ["name"]
