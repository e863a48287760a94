from __future__ import annotations

from rest_framework import viewsets

from apps.core.api import AtomicWritesMixin
from apps.scheduling.api.serializers import BindingSerializer
from apps.scheduling.filters import BindingFilter
from apps.scheduling.models import Binding


class BindingViewSet(AtomicWritesMixin, viewsets.ModelViewSet):
    """Clusters/groups × cases/case sets, with a schedule and event triggers.

    Saving a binding keeps its Celery beat entry in step, in the same transaction.
    """

    queryset = Binding.objects.prefetch_related(
        "clusters", "groups", "cases", "case_sets"
    ).distinct()
    serializer_class = BindingSerializer
    lookup_field = "name"
    filterset_class = BindingFilter
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at"]
