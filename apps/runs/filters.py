import django_filters

from apps.core.filters import FilterSet
from apps.runs.models import ProbeRun, RunState, Trigger


class ProbeRunFilter(FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=RunState.choices)
    trigger = django_filters.ChoiceFilter(choices=Trigger.choices)
    case = django_filters.CharFilter(field_name="case__name")
    cluster = django_filters.CharFilter(field_name="cluster__name")
    binding = django_filters.CharFilter(field_name="binding__name")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = ProbeRun
        fields = ["state", "trigger", "case", "cluster", "binding", "ok"]
