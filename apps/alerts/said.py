"""The alert texts written when something happens (timeline lines, flip notes, an alert's
"why"), kept with their parameters and rendered in the reader's language (apps/core/said.py)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop, ngettext_lazy

from apps.alerts.models import AlertState, FlipEvent, Severity, Silence
from apps.core.said import Said, message, say, vocabulary

STATE = vocabulary("alert_state", AlertState, english_code=True)
EVENT = vocabulary("flip_event", FlipEvent, english_code=True)
SEVERITY = vocabulary("severity", Severity, english_code=True)

FLIP = message("alerts.flip", _("%(old)s → %(new)s (%(event)s)"))
WITH_NOTE = message("alerts.with_note", _("%(text)s: %(note)s"))
NOT_NOTIFIED = message("alerts.not_notified", _("%(text)s [not notified]"))
FLAPPING = message(
    "alerts.flapping",
    _("more than %(threshold)s transitions in an hour; quiet until it is stable"),
)
NO_RULE = message("alerts.no_rule", _("no enabled rule applies any more"))
RESOLVED_BY_HAND = message("alerts.resolved_by_hand", _("resolved by hand by %(user)s"))
ACKNOWLEDGED_BY = message("alerts.acknowledged_by", _("acknowledged by %(user)s"))
ACKNOWLEDGED_UNTIL = message(
    "alerts.acknowledged_until", _("acknowledged by %(user)s until %(until)s UTC")
)
SILENCED_UNTIL = message("alerts.silenced_until", _("silenced until %(until)s UTC (%(why)s)"))
DEPENDS_ON = message(
    "alerts.depends_on",
    _("not notified: it depends on %(case)s, which is %(state)s on %(cluster)s"),
)
ESCALATED = message("alerts.escalated", _("firing for over %(minutes)s min: %(old)s → %(new)s"))
STABLE_HEALTHY = message("alerts.stable_healthy", _("stable again, healthy"))
STABLE_FAILING = message("alerts.stable_failing", _("stable again, still failing"))
SILENCE_ENDED = message("alerts.silence_ended", _("silence ended, still failing"))
DEPENDENCY_RECOVERED = message(
    "alerts.dependency_recovered", _("dependency %(case)s recovered; this case still fails")
)
QUIET_SILENCED = message(
    "alerts.quiet_silenced", _("%(event)s not notified: silenced until %(until)s UTC")
)

# Why an alert fires (apps/alerts/evaluation.py).
CONSECUTIVE = message(
    "alerts.consecutive",
    ngettext_lazy("%(n)s consecutive failed run", "%(n)s consecutive failed runs", "n"),
)
SUCCESS_RATE = message(
    "alerts.success_rate", _("success rate %(rate)s%% over %(scope)s, below %(limit)s%%")
)
LAST_MINUTES = message("alerts.last_minutes", _("the last %(minutes)s min"))
LAST_RUNS = message("alerts.last_runs", _("the last %(runs)s runs"))
SLOW_STEP = message("alerts.slow_step", _("step %(step)s took %(duration)s ms, over %(limit)s ms"))
NO_RUN_FOR = message("alerts.no_run_for", _("no run finished for %(minutes)s min"))


def silenced_note(silence: Silence) -> Said:
    """What a flip into silence says: until when, and why."""
    until = f"{silence.ends_at:%Y-%m-%d %H:%M}"
    return say(SILENCED_UNTIL, until=until, why=silence.comment or str(silence))


# A pair that stopped reporting: stored in English, shown through gettext like the shipped
# rules' summaries (apps/core/said.py render_known).
STALE_SUMMARY = gettext_noop(
    "KubeProbe itself: the probe has not finished a run in time; check the workers, the "
    "cluster's executor and skipped runs on the binding"
)
