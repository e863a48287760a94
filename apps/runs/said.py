"""Why the portal closed a run (the reaper, dispatch), kept with its parameters
(apps/core/said.py). The English text stays in ProbeRun.reason: diagnosis rules read it."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from apps.core.said import message

NO_REPORT = message("runs.no_report", _("no report within the case timeout of %(seconds)ss"))
POD_PART = message("runs.pod_part", _("%(text)s; pod: %(pod)s"))
ERROR_PART = message("runs.error_part", _("%(text)s; %(error)s"))
EXITED = message("runs.exited", _("the probe exited without reporting a result"))
POD_GONE = message("runs.pod_gone", _("the pod is gone"))
DISPATCH_FAILED = message("runs.dispatch_failed", _("dispatch failed %(n)s times, last: %(error)s"))
