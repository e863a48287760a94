from __future__ import annotations

from apps.catalog.api.serializers import CaseSerializer, CaseSetSerializer, CaseTemplateSerializer
from apps.catalog.filters import CaseFilter, CaseSetFilter, CaseTemplateFilter
from apps.catalog.models import Case, CaseSet, CaseTemplate
from apps.core.api import NamedModelViewSet


class CaseTemplateViewSet(NamedModelViewSet):
    queryset = CaseTemplate.objects.all()
    serializer_class = CaseTemplateSerializer
    filterset_class = CaseTemplateFilter
    search_fields = ["name", "image", "description", "owner"]
    ordering_fields = ["name", "kind", "created_at"]


class CaseViewSet(NamedModelViewSet):
    queryset = Case.objects.select_related("template", "render_config")
    serializer_class = CaseSerializer
    filterset_class = CaseFilter
    search_fields = ["name", "description", "template__name"]


class CaseSetViewSet(NamedModelViewSet):
    queryset = CaseSet.objects.prefetch_related("cases")
    serializer_class = CaseSetSerializer
    filterset_class = CaseSetFilter
