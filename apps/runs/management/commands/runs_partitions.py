"""manage.py runs_partitions: create and open partitions of the runs table now (Postgres)."""

from __future__ import annotations

from typing import Any

from apps.core.i18n import LocalizedHelpCommand, gettext_lazy
from apps.runs.models import RunPartition
from apps.runs.partitions import is_partitioned, partitions_maintain


class Command(LocalizedHelpCommand):
    help = gettext_lazy(
        "Create the runs table's partitions ahead (what beat does every 10 minutes) and list them."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not is_partitioned():
            self.stdout.write("the runs table is not partitioned here (Postgres only)")
            return
        done = partitions_maintain()
        self.stdout.write(f"created {done.created or 'none'}, opened {done.opened or 'none'}")
        for part in RunPartition.objects.all():
            opened = f"opened {part.opened_at:%Y-%m-%d %H:%M}" if part.opened_at else "ahead"
            self.stdout.write(f"  {part}: {opened}")
