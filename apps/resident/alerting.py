"""Alert judging of resident probes (filled in by a later commit)."""

from __future__ import annotations


def resident_alerts_judge() -> int:
    return 0
