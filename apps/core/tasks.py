from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.core.heartbeat import heartbeat_record

HEARTBEAT_TASK = "apps.core.tasks.heartbeat"


@shared_task(name=HEARTBEAT_TASK, bind=True, ignore_result=True)
def heartbeat(self: Any, *, kind: str) -> None:
    """Sent by beat to each queue (`kind`, routed by kubeprobe_site.queues.route_task):
    the worker that takes it records the heartbeat of the queue it took it from."""
    queue = (self.request.delivery_info or {}).get("routing_key") or kind
    heartbeat_record(name=f"queue:{queue}")
