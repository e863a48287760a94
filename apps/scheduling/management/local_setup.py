"""What the local set-up commands (seed_local_demo, seed_local_kube) share: the schedule
options, turning the set-up's refusals into command errors, and the summary lines."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from apps.core.i18n import LocalizedHelpCommand
from apps.scheduling.local_demo import LocalDemoError, LocalDemoResult


class LocalSetupCommand(LocalizedHelpCommand):
    """Subclasses add their target options, set up, and name their fired and results lines."""

    default_interval = 30
    # What a ValidationError of the set-up's rows means, before its messages.
    invalid_rows = "The rows are not valid"

    def add_arguments(self, parser: CommandParser) -> None:
        self.add_target_arguments(parser)
        parser.add_argument(
            "--interval", type=int, default=self.default_interval, help="Seconds between runs."
        )
        parser.add_argument(
            "--no-run-now", action="store_true", help="Do not fire the binding right away."
        )

    def add_target_arguments(self, parser: CommandParser) -> None:
        """The options naming what to set up."""

    def set_up(
        self, options: dict[str, Any], *, interval_seconds: int, run_now: bool
    ) -> LocalDemoResult:
        """Run the set-up."""
        raise NotImplementedError

    def write_catalog(self, result: LocalDemoResult, options: dict[str, Any]) -> None:
        """Say what seeding the catalog did, if the set-up seeds it visibly."""

    def fired_line(self, result: LocalDemoResult) -> str:
        raise NotImplementedError

    def results_line(self, base_url: str) -> str:
        raise NotImplementedError

    def handle(self, *args: Any, **options: Any) -> None:
        if options["interval"] < 1:
            raise CommandError("--interval must be at least 1 second.")
        try:
            result = self.set_up(
                options, interval_seconds=options["interval"], run_now=not options["no_run_now"]
            )
        except LocalDemoError as exc:
            raise CommandError(str(exc)) from exc
        except ValidationError as exc:
            raise CommandError(f"{self.invalid_rows}: {'; '.join(exc.messages)}") from exc
        self.write_catalog(result, options)
        for line in result.demo:
            note = f"  ({line.note})" if line.note else ""
            self.stdout.write(f"{line.what} {line.name}: {line.action}{note}")
        if result.fired.created:
            self.stdout.write(self.fired_line(result))
        self.stdout.write(self.results_line(settings.KUBEPROBE_PUBLIC_URL))
