"""Applying ProbeConfigs to clusters (filled in by the next commit)."""

from __future__ import annotations


def resident_probe_sync(*, probe_id: int) -> None:
    return None


def probeconfigs_remove(*, name: str, cluster_ids: list[int]) -> None:
    return None


def resident_probes_resync() -> int:
    return 0
