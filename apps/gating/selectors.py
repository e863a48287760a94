"""Gate reads for pages: the latest decisions of a cluster."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.clusters.models import Cluster
from apps.gating.models import GateDecision

PANEL_DECISIONS = 5


def gate_decisions_recent(
    *, cluster: Cluster, limit: int = PANEL_DECISIONS
) -> QuerySet[GateDecision]:
    """The cluster's newest decisions, newest first (index gatedecision_cluster)."""
    return GateDecision.objects.filter(cluster=cluster).order_by("-created_at", "-id")[:limit]
