"""`manage.py seed_local_kube`: `make run KUBE=1`'s local Kubernetes cluster and binding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from apps.core.admin_utils import lazy_format
from apps.core.i18n import gettext_lazy
from apps.scheduling.local_demo import (
    KUBE_BINDING,
    KUBE_CASES,
    KUBE_CLUSTER,
    LocalDemoResult,
    local_kube_setup,
)
from apps.scheduling.management.local_setup import LocalSetupCommand


class Command(LocalSetupCommand):
    help = lazy_format(
        gettext_noop(
            "Register the local control plane (deploy/dev/kube-up --name %(kube_cluster)s) as the cluster `%(kube_cluster)s` and bind the seeded Kubernetes cases to it. Idempotent."
        ),
        kube_cluster=KUBE_CLUSTER,
    )
    default_interval = 60
    invalid_rows = "Cannot register the cluster"

    def add_target_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--kubeconfig", required=True, help=gettext_lazy("The cluster's admin kubeconfig.")
        )

    def set_up(
        self, options: dict[str, Any], *, interval_seconds: int, run_now: bool
    ) -> LocalDemoResult:
        path = Path(options["kubeconfig"])
        if not path.is_file():
            raise CommandError(_("No kubeconfig at %(path)s.") % {"path": path})
        return local_kube_setup(kubeconfig=path, interval_seconds=interval_seconds, run_now=run_now)

    def fired_line(self, result: LocalDemoResult) -> str:
        return (
            f"Fired {KUBE_BINDING} now: {len(result.fired.created)} runs queued "
            f"({', '.join(KUBE_CASES)})."
        )

    def results_line(self, base_url: str) -> str:
        return f"Results: {base_url}/admin/runs/proberun/?cluster__name={KUBE_CLUSTER}"
