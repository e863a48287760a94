"""`manage.py seed_catalog [--update] [--image IMAGE]`: register the built-in cases."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from apps.catalog.services import SeedLine, catalog_seed_builtin
from apps.core.i18n import LocalizedHelpCommand, gettext_lazy


def write_seed_lines(command: BaseCommand, lines: list[SeedLine]) -> None:
    for line in lines:
        note = f"  ({line.note})" if line.note else ""
        indent = "  " if line.what == "case" else ""  # under its template
        command.stdout.write(f"{indent}{line.what} {line.name}: {line.action}{note}")
    counts = Counter(line.action for line in lines)
    summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    command.stdout.write(f"Built-in catalog: {summary}.")


class Command(LocalizedHelpCommand):
    help = gettext_lazy(
        "Register the built-in cases of probe_sdk/cases/ as templates with default cases and "
        "the `builtin-probes` case set. Idempotent; rows that exist are kept as edited unless "
        "--update resets the templates. Never deletes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--update",
            action="store_true",
            help=gettext_lazy(
                "Reset existing built-in templates to the shipped definition (cases are kept)."
            ),
        )
        parser.add_argument(
            "--image",
            default="",
            help=gettext_lazy("Image of the templates (default KUBEPROBE_PROBE_IMAGE)."),
        )

    def handle(self, *args: Any, update: bool, image: str, **options: Any) -> None:
        try:
            lines = catalog_seed_builtin(update=update, image=image or None)
        except ValidationError as exc:
            raise CommandError(
                _("A built-in row is not valid: %(errors)s") % {"errors": "; ".join(exc.messages)}
            ) from exc
        write_seed_lines(self, lines)
