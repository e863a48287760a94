"""Incident titles and timeline lines, kept with their parameters (apps/core/said.py)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from apps.core.said import message, vocabulary
from apps.runs.models import RootCause

ROOT_CAUSE = vocabulary("root_cause", RootCause)
ROOT_CAUSE_CODE = vocabulary("root_cause_code", RootCause, english_code=True)  # "image"

UNKNOWN_CAUSE = message("diagnosis.unknown_cause", _("unknown cause"))
UNDIAGNOSED = message("diagnosis.undiagnosed", _("undiagnosed"))
CASE_WIDE_TITLE = message(
    "diagnosis.case_wide_title", _("%(case)s failing on many clusters: %(cause)s")
)
CLUSTER_WIDE_TITLE = message(
    "diagnosis.cluster_wide_title",
    ngettext_lazy(
        "%(n)s case failing on %(cluster)s: %(cause)s",
        "%(n)s cases failing on %(cluster)s: %(cause)s",
        "n",
    ),
)
CASE_WIDE_OPENED = message(
    "diagnosis.case_wide_opened",
    ngettext_lazy(
        "%(n)s cluster fails %(case)s the same way within %(seconds)s s: %(cause)s",
        "%(n)s clusters fail %(case)s the same way within %(seconds)s s: %(cause)s",
        "n",
    ),
)
CLUSTER_WIDE_OPENED = message(
    "diagnosis.cluster_wide_opened",
    ngettext_lazy(
        "%(n)s case fails on %(cluster)s within %(seconds)s s; the deepest cause among "
        "them: %(cause)s (%(present)s)",
        "%(n)s cases fail on %(cluster)s within %(seconds)s s; the deepest cause among "
        "them: %(cause)s (%(present)s)",
        "n",
    ),
)
MOVED = message(
    "diagnosis.moved",
    _("%(case)s on %(cluster)s moved to incident #%(id)s (%(title)s)"),
)
JOINED = message("diagnosis.joined", _("%(case)s on %(cluster)s joined (run %(run)s)"))
RECOVERED = message("diagnosis.recovered", _("%(case)s on %(cluster)s recovered"))
ALL_RECOVERED = message("diagnosis.all_recovered", _("every member recovered"))
CONFIRMED = message("diagnosis.confirmed", _("root cause confirmed %(cause)s"))
CORRECTED = message("diagnosis.corrected", _("root cause corrected from %(before)s to %(cause)s"))
WITH_NOTE = message("diagnosis.with_note", _("%(text)s: %(note)s"))
