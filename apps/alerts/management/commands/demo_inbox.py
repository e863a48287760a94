"""`manage.py demo_inbox`: the quick start's demo channel, an inbox shown on the dashboards."""

from __future__ import annotations

from typing import Any

from apps.alerts.inbox import inbox_channel_ensure
from apps.core.i18n import LocalizedHelpCommand, gettext_lazy


class Command(LocalizedHelpCommand):
    help = gettext_lazy(
        "Create the channel `inbox` (kind inbox): notifications listed on /dashboard/inbox/."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        channel, created = inbox_channel_ensure()
        state = "created" if created else ("kept" if channel.enabled else "kept (disabled)")
        self.stdout.write(f"Channel {channel.name} ({channel.kind}): {state}; /dashboard/inbox/")
