from __future__ import annotations

from rest_framework import mixins, viewsets

from apps.core.api import NamedModelViewSet
from apps.scheduling.api.serializers import BindingSerializer, EventSerializer
from apps.scheduling.filters import BindingFilter, EventFilter
from apps.scheduling.models import Binding, Event, EventSource
from apps.scheduling.services import event_record


class BindingViewSet(NamedModelViewSet):
    """Clusters/groups × cases/case sets, with a schedule and event triggers.

    Saving a binding keeps its Celery beat entry in step, in the same transaction.
    """

    queryset = Binding.objects.prefetch_related(
        "clusters", "groups", "cases", "case_sets"
    ).distinct()
    serializer_class = BindingSerializer
    filterset_class = BindingFilter
    ordering_fields = ["name", "created_at", "updated_at"]


class EventViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Changes in clusters. POST records one and fires, at once, every enabled binding
    that subscribes to its kind/component and targets its cluster."""

    queryset = Event.objects.select_related("cluster")
    serializer_class = EventSerializer
    filterset_class = EventFilter
    ordering_fields = ["created_at"]

    def perform_create(self, serializer: EventSerializer) -> None:  # type: ignore[override]
        data = serializer.validated_data
        event, result = event_record(
            cluster=data["cluster"],
            kind=data["kind"],
            component=data.get("component", ""),
            detail=data.get("detail") or {},
            source=EventSource.API,
        )
        event.created_run_ids = result.created  # type: ignore[attr-defined]
        serializer.instance = event
