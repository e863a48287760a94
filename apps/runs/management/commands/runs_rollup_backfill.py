"""manage.py runs_rollup_backfill [--hours N]: recompute the hourly run rollups."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from apps.core.i18n import LocalizedHelpCommand, gettext_lazy
from apps.runs.rollups import rollups_rebuild


class Command(LocalizedHelpCommand):
    help = gettext_lazy(
        "Recompute the hourly rollups of finished runs (what the 24 h and 7 d statistics "
        "read) from the runs: all of them, or the last --hours."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--hours", type=int, default=None, help=gettext_lazy("only the last N hours")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        hours = options["hours"]
        if hours is not None and hours <= 0:
            raise CommandError("--hours must be a positive whole number")
        since = timezone.now() - timedelta(hours=hours) if hours else None
        started = timezone.now()
        rows = rollups_rebuild(since=since)
        took = (timezone.now() - started).total_seconds()
        self.stdout.write(f"{rows} rollup rows rebuilt in {took:.1f} s")
