import django_filters

from apps.core.filters import FilterSet
from apps.scheduling.models import Binding, Event, EventSource


class BindingFilter(FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    enabled = django_filters.BooleanFilter()
    cluster = django_filters.CharFilter(
        field_name="clusters__name", label="Explicit target cluster"
    )
    group = django_filters.CharFilter(field_name="groups__name")
    case = django_filters.CharFilter(field_name="cases__name", label="Explicit subject case")
    case_set = django_filters.CharFilter(field_name="case_sets__name")

    class Meta:
        model = Binding
        fields = ["name", "enabled"]


class EventFilter(FilterSet):
    cluster = django_filters.CharFilter(field_name="cluster__name")
    kind = django_filters.CharFilter()
    component = django_filters.CharFilter()
    source = django_filters.ChoiceFilter(choices=EventSource.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Event
        fields = ["cluster", "kind", "component", "source"]
