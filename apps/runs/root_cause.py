"""How a root cause (ProbeRun.root_cause*, Alert.root_cause*) reads in one line."""

from __future__ import annotations

from typing import Any

from apps.core.said import render_known
from apps.runs.models import RootCause


def root_cause_text(obj: Any) -> str:
    """ "etcd (etcd): etcd does not answer…; check … [rule, 90%]", or "" when not diagnosed.

    obj: anything with the root_cause* fields (a run, an alert, an incident's copy)."""
    category = getattr(obj, "root_cause", "") or ""
    if not category:
        return ""
    label = str(RootCause(category).label) if category in RootCause.values else category
    component = getattr(obj, "root_cause_component", "") or ""
    head = f"{label} ({component})" if component and component.lower() != label.lower() else label
    summary = render_known(getattr(obj, "root_cause_summary", "") or "")
    source = getattr(obj, "root_cause_source", "") or ""
    confidence = getattr(obj, "root_cause_confidence", None)
    how = ", ".join(p for p in (source, f"{confidence:.0%}" if confidence is not None else "") if p)
    return f"{head}: {summary}" + (f" [{how}]" if how else "") if summary else head
