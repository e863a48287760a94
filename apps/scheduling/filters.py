import django_filters

from apps.scheduling.models import Binding


class BindingFilter(django_filters.FilterSet):
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
