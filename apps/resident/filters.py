"""Filter sets of resident probes and their alert rules, shared by the API and the admin."""

import django_filters
from django.utils.translation import gettext_lazy as _

from apps.core.filters import FilterSet
from apps.resident.models import ResidentAlertRule, ResidentProbe


class ResidentProbeFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    enabled = django_filters.BooleanFilter()
    cluster = django_filters.CharFilter(
        field_name="clusters__name", label=_("Explicit target cluster")
    )
    group = django_filters.CharFilter(field_name="groups__name", label=_("Target group"))
    case = django_filters.CharFilter(field_name="case__name", label=_("Built-in case"))
    image = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = ResidentProbe
        fields = ["name", "enabled"]


class ResidentAlertRuleFilter(FilterSet):
    probe = django_filters.CharFilter(field_name="probe__name")
    enabled = django_filters.BooleanFilter()
    severity = django_filters.CharFilter()

    class Meta:
        model = ResidentAlertRule
        fields = ["probe", "enabled", "severity"]
