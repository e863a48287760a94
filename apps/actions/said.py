"""The incident timeline lines of self-heal actions, kept with their parameters
(apps/core/said.py)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from apps.core.said import message

WHAT_WEBHOOK = message("actions.what_webhook", _("webhook POST %(url)s"))
WHAT_JOB = message("actions.what_job", _("Job in %(cluster)s/%(namespace)s"))
WHAT_NONE = message("actions.what_none", _("no self-heal action"))
PLANNED = message("actions.planned", _("policy %(policy)s (%(severity)s on %(cluster)s): %(text)s"))
RATE_LIMITED = message(
    "actions.rate_limited",
    _("%(what)s not run: rate limit of %(count)s per %(minutes)s min on this cluster reached"),
)
DRY_RUN = message("actions.dry_run", _("dry run, would run %(what)s"))
AWAITING = message("actions.awaiting", _("%(what)s is disruptive: waiting for an admin's approval"))
NOTIFY_ONLY = message("actions.notify_only", _("notify and escalate as configured"))
QUEUED = message("actions.queued", _("%(what)s queued"))
SUCCEEDED = message("actions.succeeded", _("policy %(policy)s: %(what)s succeeded: %(outcome)s"))
FAILED = message("actions.failed", _("policy %(policy)s: %(what)s failed: %(outcome)s"))
NOTIFIED = message("actions.notified", _("policy %(policy)s: notified %(channel)s at %(severity)s"))
PAGED = message(
    "actions.paged", _("policy %(policy)s: paged (high urgency) %(channel)s at %(severity)s")
)
NOT_NOTIFIED = message(
    "actions.not_notified", _("policy %(policy)s: %(channel)s not notified: %(error)s")
)
NOT_PAGED = message(
    "actions.not_paged", _("policy %(policy)s: %(channel)s not paged (high urgency): %(error)s")
)
APPROVED = message("actions.approved", _("%(user)s approved %(what)s"))
REJECTED = message("actions.rejected", _("%(user)s rejected %(what)s"))
