"""The gate's reasons, kept with their message and parameters (apps/core/said.py): a
decision asked in English reads in Chinese to a Chinese reader, and the other way round."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from apps.core.said import message, vocabulary
from apps.runs.models import RootCause, RootCauseSource, RunState

RUN_STATE = vocabulary("run_state", RunState, english_code=True)
CAUSE = vocabulary("gate_root_cause", RootCause)
SOURCE = vocabulary("root_cause_source", RootCauseSource, english_code=True)

CLUSTER_DISABLED = message(
    "gating.cluster_disabled", _("Cluster %(cluster)s is disabled: nothing probes it.")
)
NO_CASES = message(
    "gating.no_cases", _("No enabled case gates this request under policy %(policy)s.")
)
NO_RUN_IN_CHECK = message("gating.no_run_in_check", _("%(case)s: the check started no run of it."))
NO_RESULT = message("gating.no_result", _("%(case)s: no finished run on this cluster yet."))
RUNNING = message(
    "gating.running", _("%(case)s: run %(run)s was still %(state)s at the check's timeout.")
)
STALE = message(
    "gating.stale",
    _("%(case)s: the latest result is %(age)s old; policy %(policy)s accepts at most %(max_age)s."),
)
SECONDS = message("gating.seconds", _("%(s)ds"))
MINUTES = message("gating.minutes", _("%(m)dm"))
HOURS = message("gating.hours", _("%(h)dh %(m)dm"))
SILENCED = message("gating.silenced", _("(silenced: %(silence)s; not counted)"))
AT_STEP = message("gating.at_step", _("at step '%(step)s'"))
FAILING = message("gating.failing", _("%(case)s: %(state)s: %(error)s"))
FAILING_AT = message("gating.failing_at", _("%(case)s: %(state)s %(at)s: %(error)s"))
ALERT_OPEN = message("gating.alert_open", _("%(case)s: its alert is still %(state)s (%(reason)s)"))
INCIDENT = message("gating.incident", _("Incident #%(id)s open: %(title)s; root cause: %(cause)s"))
INCIDENT_QUIET = message("gating.incident_quiet", _("(policy: incidents do not deny; not counted)"))
NOT_KNOWN = message("gating.not_known", _("not known yet"))
WITH_PART = message("gating.with_part", _("%(text)s (%(part)s)"))
HOW = message("gating.how", _("%(text)s, %(source)s %(confidence)s"))
HOW_SOURCE = message("gating.how_source", _("%(text)s, %(source)s"))
SUFFIXED = message("gating.suffixed", _("%(text)s %(suffix)s"))
