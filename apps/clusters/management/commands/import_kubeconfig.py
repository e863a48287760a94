from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _

from apps.clusters.models import ApiStatus
from apps.clusters.services import cluster_check_api, clusters_import_kubeconfig
from apps.core.i18n import LocalizedHelpCommand, gettext_lazy


class Command(LocalizedHelpCommand):
    help = gettext_lazy(
        "Create or update clusters from a kubeconfig file: the current context by default, "
        "the named --context(s), or --all-contexts. Cluster names are slugs of context names. "
        "Each imported cluster's API server is then asked for /version and /readyz."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--context", action="append", dest="contexts", help=gettext_lazy("May be repeated.")
        )
        group.add_argument("--all-contexts", action="store_true")
        parser.add_argument(
            "--namespace", help=gettext_lazy("Namespace for probe pods (default: kubeprobe).")
        )
        parser.add_argument(
            "--no-check", action="store_true", help=gettext_lazy("Do not contact the API servers.")
        )

    def handle(
        self,
        *args: Any,
        path: Path,
        contexts: list[str] | None,
        all_contexts: bool,
        namespace: str | None,
        no_check: bool = False,
        **options: Any,
    ) -> None:
        if not path.is_file():
            raise CommandError(_("No kubeconfig file at %(path)s.") % {"path": path})
        try:
            results = clusters_import_kubeconfig(
                path=path, contexts=contexts, all_contexts=all_contexts, namespace=namespace
            )
        except ValidationError as exc:
            messages = (
                [f"{k}: {m}" for k, ms in exc.message_dict.items() for m in ms]
                if hasattr(exc, "error_dict")
                else exc.messages
            )
            raise CommandError("; ".join(messages)) from exc
        for result in results:
            verb = "Created" if result.created else "Updated"
            self.stdout.write(
                _("%(verb)s cluster %(name)s (context %(context)s)")
                % {"verb": verb, "name": result.cluster.name, "context": result.cluster.context}
            )
        if no_check:
            return
        # After the import committed: a slow or broken API server never undoes it.
        for result in results:
            check = cluster_check_api(cluster=result.cluster)
            line = f"  {result.cluster.name}: API {ApiStatus(check.status).label}"
            line += f", {check.version}" if check.version else ""
            line += f": {check.error}" if check.error else ""
            self.stdout.write(line)
