"""`manage.py seed_local_demo`: the quick start's local cluster, cases and binding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.catalog.management.commands.seed_catalog import write_seed_lines
from apps.core.local_tls import LocalPki
from apps.scheduling.local_demo import BINDING, CLUSTER, LocalDemoError, local_demo_setup


class Command(BaseCommand):
    help = (
        "Set up the quick start's demo: the built-in catalog, a `local` cluster (local "
        "executor), cases that inspect the portal's TLS endpoint and probe a local etcd, and a "
        "binding that runs them every 30 s and once right away. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--tls-port", type=int, default=None, help="Port of the portal's TLS endpoint."
        )
        parser.add_argument(
            "--etcd", default="", help="URL of the local etcd, e.g. https://127.0.0.1:12379."
        )
        parser.add_argument(
            "--tls-dir", default="", help="Directory of `local_tls`'s files (default var/tls)."
        )
        parser.add_argument("--interval", type=int, default=30, help="Seconds between runs.")
        parser.add_argument(
            "--no-run-now", action="store_true", help="Do not fire the binding right away."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["interval"] < 1:
            raise CommandError("--interval must be at least 1 second.")
        directory = Path(options["tls_dir"]) if options["tls_dir"] else settings.VAR_DIR / "tls"
        try:
            result = local_demo_setup(
                pki=LocalPki(directory.resolve()),
                tls_port=options["tls_port"],
                etcd_url=options["etcd"],
                interval_seconds=options["interval"],
                run_now=not options["no_run_now"],
            )
        except LocalDemoError as exc:
            raise CommandError(str(exc)) from exc
        except ValidationError as exc:
            raise CommandError(f"The demo's rows are not valid: {'; '.join(exc.messages)}") from exc
        if options["verbosity"] > 1:
            write_seed_lines(self, result.catalog)
        else:
            created = sum(line.action == "created" for line in result.catalog)
            self.stdout.write(
                f"Built-in catalog (manage.py seed_catalog): {created} rows created, "
                f"{len(result.catalog) - created} already there."
            )
        for line in result.demo:
            note = f"  ({line.note})" if line.note else ""
            self.stdout.write(f"{line.what} {line.name}: {line.action}{note}")
        if result.fired.created:
            self.stdout.write(f"Fired {BINDING} now: {len(result.fired.created)} runs queued.")
        base = settings.KUBEPROBE_PUBLIC_URL
        self.stdout.write(
            f"Results: {base}/admin/runs/proberun/?executor=local  "
            f"API: {base}/api/v1/runs/?cluster={CLUSTER}"
        )
