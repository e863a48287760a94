"""Cron expressions for binding schedules (five fields, or an @macro)."""

from __future__ import annotations

from celery.schedules import crontab
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def parse(expression: str) -> dict[str, str]:
    """Split a cron expression into django-celery-beat CrontabSchedule fields.

    Raises ValidationError naming the part that is wrong.
    """
    expr = MACROS.get(expression.strip().lower(), expression.strip())
    parts = expr.split()
    if len(parts) != len(FIELDS):
        raise ValidationError(
            _(
                "A cron expression has five fields (minute hour day-of-month month day-of-week) "
                "or is one of %(macros)s; got %(n)d fields."
            ),
            params={"macros": ", ".join(sorted(MACROS)), "n": len(parts)},
        )
    fields = dict(zip(FIELDS, parts, strict=True))
    try:
        crontab(**fields)  # celery expands every field and rejects bad ones
    except (ValueError, KeyError, IndexError) as exc:
        raise ValidationError(
            _("Invalid cron expression %(expr)s: %(err)s"), params={"expr": expression, "err": exc}
        ) from exc
    return fields
