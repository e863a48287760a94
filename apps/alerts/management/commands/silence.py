"""`manage.py silence add|list|expire`: maintenance windows from a shell.

silence add --cluster prod-1 [--case C] [--group G] [--case-set S] [--label k=v]
            (--for 2h | --until 2025-03-04T18:00) [--starts ISO] [--comment TEXT]
silence list [--all]
silence expire ID

Output in the language of KUBEPROBE_LANGUAGE / the locale (apps/core/i18n.py).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from apps.alerts.models import Silence
from apps.alerts.silences import silence_create, silence_expire
from apps.catalog.models import Case, CaseSet
from apps.clusters.models import Cluster, ClusterGroup
from apps.core.i18n import LocalizedCommand, gettext_lazy

DURATION_RE = re.compile(r"(\d+)([smhdw])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# option → (matcher name, model whose names it must match)
MATCHER_OPTIONS: dict[str, tuple[str, Any]] = {
    "cluster": ("cluster", Cluster),
    "group": ("group", ClusterGroup),
    "case": ("case", Case),
    "case_set": ("case_set", CaseSet),
}


def parse_duration(text: str) -> timedelta:
    """`30m`, `2h`, `1d`, `1h30m` (units s, m, h, d, w)."""
    cleaned = text.strip().lower()
    if not cleaned or DURATION_RE.sub("", cleaned):
        raise CommandError(
            _(
                "--for: %(text)r is not a duration; use a number and a unit, e.g. 30m, 2h, 1d, 1h30m."
            )
            % {"text": text}
        )
    seconds = sum(int(n) * UNIT_SECONDS[unit] for n, unit in DURATION_RE.findall(cleaned))
    if seconds <= 0:
        raise CommandError(_("--for: the duration must be longer than zero."))
    return timedelta(seconds=seconds)


def parse_moment(text: str, option: str) -> datetime:
    """An ISO 8601 date-time; without an offset it is in the portal's time zone."""
    try:
        moment = parse_datetime(text.strip())
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(
            _(
                "%(option)s: %(text)r is not an ISO date-time, e.g. 2025-03-04T18:00 or "
                "2025-03-04T18:00:00+00:00."
            )
            % {"option": option, "text": text}
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class Command(LocalizedCommand):
    help = gettext_lazy("Create, list and expire silences (maintenance windows).")

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        add = sub.add_parser("add", help=gettext_lazy("Silence matching alerts for a while."))
        add.add_argument("--cluster", help=gettext_lazy("Cluster name."))
        add.add_argument("--group", help=gettext_lazy("Cluster group name."))
        add.add_argument("--case", help=gettext_lazy("Case name."))
        add.add_argument("--case-set", dest="case_set", help=gettext_lazy("Case set name."))
        add.add_argument(
            "--label",
            action="append",
            default=[],
            help=gettext_lazy("Cluster label key=value (repeatable)."),
        )
        add.add_argument(
            "--for", dest="duration", help=gettext_lazy("How long: 30m, 2h, 1d, 1h30m.")
        )
        add.add_argument("--until", help=gettext_lazy("Or: when it ends (ISO date-time)."))
        add.add_argument(
            "--starts", help=gettext_lazy("When it starts (ISO date-time); default now.")
        )
        add.add_argument("--comment", default="", help=gettext_lazy("Why: the change, the ticket."))
        listing = sub.add_parser("list", help=gettext_lazy("Active and pending silences."))
        listing.add_argument(
            "--all", action="store_true", help=gettext_lazy("Include ended silences.")
        )
        expire = sub.add_parser("expire", help=gettext_lazy("End a silence now."))
        expire.add_argument("id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['verb']}")(options)

    def _add(self, options: dict[str, Any]) -> None:
        matchers = []
        for option, (name, model) in MATCHER_OPTIONS.items():
            value = options.get(option)
            if value is None:
                continue
            if not model.objects.filter(name=value).exists():
                flag = "--" + option.replace("_", "-")
                raise CommandError(
                    _("%(flag)s: no %(model)s named %(value)r.")
                    % {"flag": flag, "model": model._meta.verbose_name, "value": value}
                )
            matchers.append({"name": name, "value": value})
        for label in options["label"]:
            key, sep, _value = label.partition("=")
            if not sep or not key.strip():
                raise CommandError(_("--label: %(label)r is not key=value.") % {"label": label})
            matchers.append({"name": "label", "value": label})
        if not matchers:
            raise CommandError(
                _("Give at least one matcher: --cluster, --group, --case, --case-set or --label.")
            )
        if bool(options["duration"]) == bool(options["until"]):
            raise CommandError(_("Give one of --for DURATION or --until DATETIME."))
        starts = parse_moment(options["starts"], "--starts") if options["starts"] else None
        if options["until"]:
            ends = parse_moment(options["until"], "--until")
        else:
            ends = (starts or timezone.now()) + parse_duration(options["duration"])
        if ends <= timezone.now():
            which = "--until" if options["until"] else "--for"
            raise CommandError(
                _("%(option)s: the silence would end in the past (%(ends)s).")
                % {"option": which, "ends": f"{ends:%Y-%m-%d %H:%M %Z}"}
            )
        try:
            silence = silence_create(
                matchers=matchers, ends_at=ends, starts_at=starts, comment=options["comment"]
            )
        except ValidationError as exc:
            raise CommandError(_describe(exc)) from None
        self.stdout.write(
            _("Silence %(id)s: %(line)s") % {"id": silence.pk, "line": _line(silence)}
        )

    def _list(self, options: dict[str, Any]) -> None:
        silences = Silence.objects.select_related("created_by").order_by("starts_at", "id")
        if not options["all"]:
            silences = silences.filter(ends_at__gt=timezone.now())
        count = 0
        for silence in silences:
            self.stdout.write(f"{silence.pk:>6}  {_line(silence)}")
            count += 1
        if not count:
            self.stdout.write(
                _("No silences.") if options["all"] else _("No active or pending silences.")
            )

    def _expire(self, options: dict[str, Any]) -> None:
        try:
            silence = silence_expire(silence_id=options["id"])
        except Silence.DoesNotExist:
            raise CommandError(_("No silence with id %(id)s.") % {"id": options["id"]}) from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            _("Silence %(id)s expired: %(line)s") % {"id": silence.pk, "line": _line(silence)}
        )


def _state(silence: Silence) -> str:
    now = timezone.now()
    if silence.ends_at <= now:
        return pgettext("silence", "ended")
    if silence.starts_at <= now:
        return pgettext("silence", "active")
    return pgettext("silence", "pending")


def _line(silence: Silence) -> str:
    matchers = ", ".join(f"{m['name']}={m['value']}" for m in silence.matchers)
    when = f"{silence.starts_at:%Y-%m-%d %H:%M} → {silence.ends_at:%Y-%m-%d %H:%M %Z}"
    parts = [f"[{_state(silence)}]", matchers, when]
    if silence.created_by:
        parts.append(_("by %(user)s") % {"user": silence.created_by})
    if silence.comment:
        parts.append(f"— {silence.comment}")
    return "  ".join(parts)


def _describe(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)
