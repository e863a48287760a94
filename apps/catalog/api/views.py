from __future__ import annotations

from rest_framework import viewsets

from apps.catalog.api.serializers import CaseSerializer, CaseSetSerializer, CaseTemplateSerializer
from apps.catalog.filters import CaseFilter, CaseSetFilter, CaseTemplateFilter
from apps.catalog.models import Case, CaseSet, CaseTemplate
from apps.core.api import AtomicWritesMixin


class CaseTemplateViewSet(AtomicWritesMixin, viewsets.ModelViewSet):
    queryset = CaseTemplate.objects.all()
    serializer_class = CaseTemplateSerializer
    lookup_field = "name"
    filterset_class = CaseTemplateFilter
    search_fields = ["name", "image", "description", "owner"]
    ordering_fields = ["name", "kind", "created_at"]


class CaseViewSet(AtomicWritesMixin, viewsets.ModelViewSet):
    queryset = Case.objects.select_related("template", "render_config")
    serializer_class = CaseSerializer
    lookup_field = "name"
    filterset_class = CaseFilter
    search_fields = ["name", "description", "template__name"]
    ordering_fields = ["name", "created_at"]


class CaseSetViewSet(AtomicWritesMixin, viewsets.ModelViewSet):
    queryset = CaseSet.objects.prefetch_related("cases")
    serializer_class = CaseSetSerializer
    lookup_field = "name"
    filterset_class = CaseSetFilter
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]
