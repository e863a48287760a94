"""`manage.py probe run CASE --cluster NAME [--wait]`: run a case by hand from a shell."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.catalog.models import Case
from apps.clusters.models import Cluster
from apps.core.i18n import LocalizedHelpCommand, gettext_lazy
from apps.core.said import render_field
from apps.runs import dispatch, reaping, services
from apps.runs.models import FINISHED_STATES, ProbeRun, RunState

POLL_SECONDS = 0.5


class Command(LocalizedHelpCommand):
    help = gettext_lazy(
        "Run a probe case on a cluster now; with --wait, print its steps and exit non-zero on failure."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        run = sub.add_parser("run", help=gettext_lazy("Run CASE on --cluster now."))
        run.add_argument("case")
        run.add_argument("--cluster", required=True)
        run.add_argument(
            "--wait", action="store_true", help=gettext_lazy("Wait for the result and print it.")
        )
        run.add_argument(
            "--dispatch-here",
            action="store_true",
            help=gettext_lazy(
                "Launch from this process instead of a Celery worker (no worker needed)."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        case = Case.objects.select_related("template").filter(name=options["case"]).first()
        if case is None:
            raise CommandError(_("No case named '%(name)s'.") % {"name": options["case"]})
        cluster = Cluster.objects.filter(name=options["cluster"]).first()
        if cluster is None:
            raise CommandError(_("No cluster named '%(name)s'.") % {"name": options["cluster"]})
        result = services.runs_create(
            pairs=[(case, cluster)],
            trigger="manual",
            key=services.manual_key(),
            skip_if_active=False,
        )
        [run_id] = result.created
        self.stdout.write(
            _("Run %(run_id)s: %(case)s on %(cluster)s")
            % {"run_id": run_id, "case": case.name, "cluster": cluster.name}
        )
        if options["dispatch_here"]:
            dispatch.run_dispatch(run_id=run_id)
        if not options["wait"]:
            return
        run = self._wait(run_id, case.effective_timeout)
        self._print(run)
        if run.state != RunState.SUCCEEDED:
            raise CommandError(
                _("Run %(run)s ended %(state)s.") % {"run": run.pk, "state": run.state},
                returncode=1,
            )

    def _wait(self, run_id: int, timeout: int) -> ProbeRun:
        # Past the deadline this command closes the run itself, so --wait ends
        # even where no reaper runs.
        grace = settings.KUBEPROBE_REPORT_GRACE_SECONDS
        give_up = timezone.now() + timedelta(seconds=timeout + grace + 120)
        last_state = ""
        while True:
            run = ProbeRun.objects.get(pk=run_id)
            if run.state != last_state:
                self.stdout.write(_("  state: %(state)s") % {"state": run.state})
                last_state = run.state
            if run.state in FINISHED_STATES:
                return run
            if run.deadline and timezone.now() > run.deadline + timedelta(seconds=grace):
                reaping.runs_reap_cluster(cluster_id=run.cluster_id)
            elif timezone.now() > give_up:
                raise CommandError(
                    _("Run %(run_id)s was never dispatched: is a Celery worker running?")
                    % {"run_id": run_id}
                )
            time.sleep(POLL_SECONDS)

    def _print(self, run: ProbeRun) -> None:
        for step in run.steps:
            mark = "ok  " if step.get("ok") else "FAIL"
            line = f"  [{mark}] {step.get('name')} ({step.get('duration_ms')} ms)"
            if step.get("error"):
                line += f": {step['error']}"
            self.stdout.write(line)
        for error in run.errors:
            self.stdout.write(_("  error: %(error)s") % {"error": error})
        if run.reason:
            self.stdout.write(_("  reason: %(reason)s") % {"reason": render_field(run, "reason")})
        if run.metrics:
            self.stdout.write(
                "  metrics: " + ", ".join(f"{k}={v}" for k, v in sorted(run.metrics.items()))
            )
        self.stdout.write(
            _("Run %(run)s %(state)s in %(duration_ms)s ms")
            % {"run": run.pk, "state": run.state, "duration_ms": run.duration_ms}
        )
