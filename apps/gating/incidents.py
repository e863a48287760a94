"""Open incidents on a cluster as gate reasons (apps.diagnosis, when present)."""

from __future__ import annotations

from typing import Any

from apps.clusters.models import Cluster


def incident_reasons(*, cluster: Cluster, denies: bool) -> list[dict[str, Any]]:
    """One reason per open incident touching the cluster, with its root cause."""
    return []
