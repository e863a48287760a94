from rest_framework import viewsets

from apps.runs.api.serializers import ProbeRunSerializer
from apps.runs.filters import ProbeRunFilter
from apps.runs.models import ProbeRun


class ProbeRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Probe runs, newest first."""

    queryset = ProbeRun.objects.select_related("case", "cluster", "binding").defer(
        "log_tail", "diagnostics"
    )
    serializer_class = ProbeRunSerializer
    filterset_class = ProbeRunFilter
    ordering_fields = ["created_at", "finished_at", "duration_ms"]
