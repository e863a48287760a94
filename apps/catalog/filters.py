"""Filter sets shared by the API and the UI."""

import django_filters

from apps.catalog.models import Case, CaseSet, CaseTemplate, ReportProtocol, TemplateKind
from apps.core.filters import FilterSet


class CaseTemplateFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    kind = django_filters.ChoiceFilter(choices=TemplateKind.choices)
    report_protocol = django_filters.ChoiceFilter(choices=ReportProtocol.choices)
    owner = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = CaseTemplate
        fields = ["name", "kind", "report_protocol", "owner"]


class CaseFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    template = django_filters.CharFilter(field_name="template__name")
    kind = django_filters.ChoiceFilter(field_name="template__kind", choices=TemplateKind.choices)
    case_set = django_filters.CharFilter(field_name="case_sets__name")
    enabled = django_filters.BooleanFilter()

    class Meta:
        model = Case
        fields = ["name", "template", "kind", "case_set", "enabled"]


class CaseSetFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    case = django_filters.CharFilter(field_name="cases__name")

    class Meta:
        model = CaseSet
        fields = ["name", "case"]
