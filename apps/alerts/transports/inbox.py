"""Inbox: keeps each notification in the portal (apps/alerts/inbox.py), listed on the
dashboard's Inbox page. Nothing leaves the machine: the quick start's demo channel."""

from __future__ import annotations

from apps.alerts.transports.base import Message, Transport, TransportConfig, register


class InboxConfig(TransportConfig):
    """No settings: messages go to this portal's Inbox page."""


@register
class InboxTransport(Transport):
    kind = "inbox"
    label = "Inbox (this portal's Inbox page)"
    Config = InboxConfig

    def send(self, message: Message) -> None:
        # Models only when sending: transports are loaded before apps may be ready.
        from apps.alerts.inbox import inbox_message_create

        inbox_message_create(message=message)
