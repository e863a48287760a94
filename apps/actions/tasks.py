"""Thin Celery entry points of the severity actions."""

from __future__ import annotations

from celery import shared_task

from apps.actions import services


@shared_task(name="apps.actions.tasks.deliver_action", ignore_result=True)
def deliver_action(action_id: int) -> None:
    services.action_deliver(action_id=action_id)
