"""`manage.py seed_local_kube`: `make run KUBE=1`'s local Kubernetes cluster and binding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.scheduling.local_demo import (
    KUBE_BINDING,
    KUBE_CASES,
    KUBE_CLUSTER,
    LocalDemoError,
    local_kube_setup,
)


class Command(BaseCommand):
    help = (
        f"Register the local control plane (deploy/dev/kube-up --name {KUBE_CLUSTER}) as the "
        f"cluster `{KUBE_CLUSTER}` and bind the seeded Kubernetes cases to it. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kubeconfig", required=True, help="The cluster's admin kubeconfig.")
        parser.add_argument("--interval", type=int, default=60, help="Seconds between runs.")
        parser.add_argument(
            "--no-run-now", action="store_true", help="Do not fire the binding right away."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["interval"] < 1:
            raise CommandError("--interval must be at least 1 second.")
        path = Path(options["kubeconfig"])
        if not path.is_file():
            raise CommandError(f"No kubeconfig at {path}.")
        try:
            result = local_kube_setup(
                kubeconfig=path,
                interval_seconds=options["interval"],
                run_now=not options["no_run_now"],
            )
        except LocalDemoError as exc:
            raise CommandError(str(exc)) from exc
        except ValidationError as exc:
            raise CommandError(f"Cannot register the cluster: {'; '.join(exc.messages)}") from exc
        for line in result.demo:
            note = f"  ({line.note})" if line.note else ""
            self.stdout.write(f"{line.what} {line.name}: {line.action}{note}")
        if result.fired.created:
            self.stdout.write(
                f"Fired {KUBE_BINDING} now: {len(result.fired.created)} runs queued "
                f"({', '.join(KUBE_CASES)})."
            )
        base = settings.KUBEPROBE_PUBLIC_URL
        self.stdout.write(f"Results: {base}/admin/runs/proberun/?cluster__name={KUBE_CLUSTER}")
