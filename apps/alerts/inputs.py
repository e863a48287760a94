"""What people type about alerts, defined once: notes, comments, quiet periods.

The dashboard and the admin use the forms below; the API's serializers build
their fields from the same limits and validators (apps/alerts/api/serializers.py);
a silence's window and comment are checked by `Silence.clean()`, which the
admin's model form, the API and `silence_create` all run. So one value is
refused everywhere with the same message.

No model imports here: `Silence.clean()` imports this module. Messages are lazy:
each is read in the language of the request (Accept-Language) or command.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

# A note or a comment says who is on it and why; a pasted log belongs elsewhere.
NOTE_MAX_CHARS = 2_000
NOTE_TOO_LONG = _("At most %(limit_value)d characters; this one has %(show_value)d.")

# Acknowledgements expire, and silences end, within 30 days: a forgotten one
# must not hide a cluster for good.
HOURS_MIN = 0.1
HOURS_MAX = 24 * 30
MAX_QUIET = timedelta(hours=HOURS_MAX)
_LIMITS = {"min": f"{HOURS_MIN:g}", "max": HOURS_MAX, "days": MAX_QUIET.days}


# Help texts of model fields (kept here: apps/alerts/models.py is at its size limit).
DEPENDS_ON_HELP = _(
    "While one of these cases fires on the same cluster, this alert is recorded "
    "but not notified (e.g. pod lifecycle depends on etcd)."
)
SILENCE_MATCHERS_HELP = _(
    'All must match, e.g. [{"name": "cluster", "value": "prod-1"}, '
    '{"name": "label", "value": "env=prod"}]. Names: cluster, group, case, case_set, label.'
)


def _limited(message: str) -> str:
    """``message`` (a msgid with %(min)s, %(max)s, %(days)s) translated when it is read."""
    return lazy(lambda: gettext(message) % _LIMITS, str)()


HOURS_OUT_OF_RANGE = _limited(gettext_noop("Give between %(min)s and %(max)s hours."))
UNTIL_IN_THE_PAST = _("Must be in the future.")
UNTIL_TOO_LATE = _limited(gettext_noop("At most %(max)s hours (%(days)s days) from now."))
SILENCE_ENDS_BEFORE_START = _("The window must end after it starts.")
SILENCE_TOO_LONG = _limited(gettext_noop("A silence lasts at most %(max)s hours (%(days)s days)."))


def note_validators() -> list[Any]:
    """For notes and comments (acknowledge, resolve, silence)."""
    return [MaxLengthValidator(NOTE_MAX_CHARS, message=NOTE_TOO_LONG)]


def hours_validators() -> list[Any]:
    """For "quiet for this many hours" (acknowledge, silence)."""
    return [
        MinValueValidator(HOURS_MIN, message=HOURS_OUT_OF_RANGE),
        MaxValueValidator(HOURS_MAX, message=HOURS_OUT_OF_RANGE),
    ]


def validate_quiet_until(value: datetime | None, *, now: datetime | None = None) -> None:
    """An acknowledgement's expiry: in the future, at most MAX_QUIET ahead (None: none)."""
    if value is None:
        return
    now = now or timezone.now()
    if value <= now:
        raise ValidationError(UNTIL_IN_THE_PAST, code="past")
    if value - now > MAX_QUIET:
        raise ValidationError(UNTIL_TOO_LATE, code="too_late")


def silence_errors(
    *, starts_at: datetime | None, ends_at: datetime | None, comment: str
) -> dict[str, str]:
    """What is wrong with a silence's window and comment, by field (empty: nothing)."""
    errors: dict[str, str] = {}
    if starts_at and ends_at:
        if ends_at <= starts_at:
            errors["ends_at"] = str(SILENCE_ENDS_BEFORE_START)
        elif ends_at - starts_at > MAX_QUIET:
            errors["ends_at"] = SILENCE_TOO_LONG
    try:
        for validator in note_validators():
            validator(comment or "")
    except ValidationError as exc:
        errors["comment"] = exc.messages[0]
    return errors


def note_field(**kwargs: Any) -> forms.CharField:
    kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "maxlength": NOTE_MAX_CHARS}))
    return forms.CharField(required=False, validators=note_validators(), **kwargs)


def hours_field(**kwargs: Any) -> forms.FloatField:
    widget = forms.NumberInput(attrs={"min": HOURS_MIN, "max": HOURS_MAX, "step": 0.1})
    return forms.FloatField(validators=hours_validators(), widget=widget, **kwargs)


class AcknowledgeForm(forms.Form):
    """Acknowledge a firing alert (dashboard, admin action)."""

    note = note_field(label=_("Note"))
    hours = hours_field(
        required=False,
        initial=4,
        label=_("Hours"),
        help_text=_("The acknowledgement expires after this many hours; empty: until it resolves."),
    )

    def until(self, now: datetime | None = None) -> datetime | None:
        """When the acknowledgement expires (None: when the alert resolves); after is_valid()."""
        hours = self.cleaned_data.get("hours")
        return (now or timezone.now()) + timedelta(hours=hours) if hours else None


class ResolveForm(forms.Form):
    """Resolve an open alert by hand (admin action)."""

    note = note_field(label=_("Note"))


class QuickSilenceForm(forms.Form):
    """Silence one alert's (case, cluster) from now for some hours (dashboard)."""

    hours = hours_field(initial=2, label=_("Hours"))
    comment = note_field(label=_("Comment"))
