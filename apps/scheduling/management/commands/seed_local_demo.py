"""`manage.py seed_local_demo`: the quick start's local cluster, cases and binding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from apps.catalog.management.commands.seed_catalog import write_seed_lines
from apps.core.i18n import gettext_lazy
from apps.core.local_tls import LocalPki
from apps.scheduling.local_demo import BINDING, CLUSTER, LocalDemoResult, local_demo_setup
from apps.scheduling.management.local_setup import LocalSetupCommand


class Command(LocalSetupCommand):
    help = gettext_lazy(
        "Set up the quick start's demo: the built-in catalog, a `local` cluster (local "
        "executor), cases that inspect the portal's TLS endpoint and probe a local etcd, and a "
        "binding that runs them every 30 s and once right away. Idempotent."
    )
    default_interval = 30
    invalid_rows = "The demo's rows are not valid"

    def add_target_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--tls-port",
            type=int,
            default=None,
            help=gettext_lazy("Port of the portal's TLS endpoint."),
        )
        parser.add_argument(
            "--etcd",
            default="",
            help=gettext_lazy("URL of the local etcd, e.g. https://127.0.0.1:12379."),
        )
        parser.add_argument(
            "--tls-dir",
            default="",
            help=gettext_lazy("Directory of `local_tls`'s files (default var/tls)."),
        )

    def set_up(
        self, options: dict[str, Any], *, interval_seconds: int, run_now: bool
    ) -> LocalDemoResult:
        directory = Path(options["tls_dir"]) if options["tls_dir"] else settings.VAR_DIR / "tls"
        return local_demo_setup(
            pki=LocalPki(directory.resolve()),
            tls_port=options["tls_port"],
            etcd_url=options["etcd"],
            interval_seconds=interval_seconds,
            run_now=run_now,
        )

    def write_catalog(self, result: LocalDemoResult, options: dict[str, Any]) -> None:
        if options["verbosity"] > 1:
            write_seed_lines(self, result.catalog)
        else:
            created = sum(line.action == "created" for line in result.catalog)
            self.stdout.write(
                _(
                    "Built-in catalog (manage.py seed_catalog): %(created)s rows created, %(existing)s already there."
                )
                % {"created": created, "existing": len(result.catalog) - created}
            )

    def fired_line(self, result: LocalDemoResult) -> str:
        return f"Fired {BINDING} now: {len(result.fired.created)} runs queued."

    def results_line(self, base_url: str) -> str:
        return (
            f"Results: {base_url}/admin/runs/proberun/?executor=local  "
            f"API: {base_url}/api/v1/runs/?cluster={CLUSTER}"
        )
