"""The gate listens to events: a component_release carrying `"gate": true` starts a check."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.dispatch import receiver

from apps.scheduling.models import Binding, Event
from apps.scheduling.signals import event_recorded


@receiver(event_recorded, dispatch_uid="gating.check_on_release")
def check_on_release(sender: Any, event: Event, bindings: list[Binding], **kwargs: Any) -> None:
    """`{"kind": "component_release", "component": "etcd", "detail": {"gate": true}}` runs
    the gate's cases for that component now; the check's id is added to the event's
    detail (`gate_check`), to poll at /api/v1/gate/checks/<id>."""
    from apps.gating import services
    from apps.gating.inputs import CHECK_TIMEOUT_DEFAULT_SECONDS
    from apps.gating.scope import UnknownComponent

    detail = event.detail or {}
    if "gate" not in detail:
        return
    if not isinstance(detail["gate"], bool):
        raise ValidationError({"detail": "detail.gate must be true or false."})
    if not detail["gate"]:
        return
    if event.kind != "component_release":
        raise ValidationError(
            {"detail": "detail.gate starts a gate check only on a component_release event."}
        )
    try:
        check = services.gate_check_start(
            cluster=event.cluster,
            component=event.component,
            timeout_seconds=CHECK_TIMEOUT_DEFAULT_SECONDS,
            event=event,
        )
    except UnknownComponent as exc:
        raise ValidationError(
            {"component": f"No gate rule or event trigger names the component '{exc}'."}
        ) from exc
    event.detail = {**detail, "gate_check": check.pk}
    Event.objects.filter(pk=event.pk).update(detail=event.detail)
