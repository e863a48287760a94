"""Why a resident probe's alert fires, kept with its parameters (apps/core/said.py)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from apps.core.said import message

AVAILABILITY = message(
    "resident.availability", _("availability %(rate)s%% over %(scope)s, below %(limit)s%%")
)
P99 = message("resident.p99", _("p99 latency %(p99)s ms over %(scope)s, above %(limit)s ms"))
NO_SAMPLES = message("resident.no_samples", _("no samples for %(minutes)s min"))
