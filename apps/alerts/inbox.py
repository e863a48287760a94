"""The inbox: notifications kept in the portal itself (channel kind `inbox`), so a trial
shows what a chat or mail channel would receive without any receiver to set up."""

from __future__ import annotations

from typing import Any

from apps.alerts.models import Channel, InboxMessage
from apps.alerts.transports.base import Message

# The newest messages kept; older ones are deleted as new ones arrive.
INBOX_KEEP = 500


def inbox_message_create(*, message: Message) -> InboxMessage:
    kept = InboxMessage.objects.create(
        event=message.event,
        severity=message.severity,
        case=message.case,
        title=message.title[:500],
        text=message.text,
        clusters=message.clusters,
        run_url=message.items[0].run_url[:2048] if message.items else "",
    )
    old = InboxMessage.objects.order_by("-received_at", "-id").values_list("pk", flat=True)[
        INBOX_KEEP:
    ]
    InboxMessage.objects.filter(pk__in=list(old)).delete()
    return kept


def inbox_messages_recent(*, limit: int = 100) -> list[InboxMessage]:
    return list(InboxMessage.objects.order_by("-received_at", "-id")[:limit])


def inbox_channels() -> list[Channel]:
    return list(Channel.objects.filter(kind="inbox").order_by("name"))


def inbox_channel_ensure(*, name: str = "inbox") -> tuple[Channel, bool]:
    """The demo inbox channel (all severities, resolved too); created once, then left as
    the operator set it (disabled stays disabled)."""
    from apps.alerts.channels import channel_save

    existing = Channel.objects.filter(name=name).first()
    if existing is not None:
        return existing, False
    fields: dict[str, Any] = {"enabled": True, "send_resolved": True}
    return channel_save(name=name, kind="inbox", config={}, **fields), True
