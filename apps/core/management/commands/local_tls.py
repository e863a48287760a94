"""`manage.py local_tls`: a local CA with server and client certificates for the quick start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _

from apps.core.i18n import LocalizedHelpCommand, gettext_lazy
from apps.core.local_tls import DEFAULT_HOSTS, LocalTlsError, local_pki_ensure


class Command(LocalizedHelpCommand):
    help = gettext_lazy(
        "Create (or renew when near expiry) a local CA and server/client certificates for "
        "127.0.0.1 and localhost under var/tls, for the quick start's TLS portal and etcd. "
        "Trials only: the CA key sits next to the certificates."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dir", default="", help=gettext_lazy("Directory of the files (default var/tls).")
        )
        parser.add_argument(
            "--host",
            action="append",
            default=[],
            help=gettext_lazy(
                "Another name or IP address for the server certificate (repeatable)."
            ),
        )
        parser.add_argument(
            "--days", type=int, default=90, help=gettext_lazy("Validity of new certificates.")
        )
        parser.add_argument(
            "--renew-days",
            type=int,
            default=30,
            help=gettext_lazy("Issue again when fewer days than this are left."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        directory = Path(options["dir"]) if options["dir"] else settings.VAR_DIR / "tls"
        hosts = list(dict.fromkeys([*DEFAULT_HOSTS, *options["host"]]))
        try:
            pki, done = local_pki_ensure(
                directory=directory.resolve(),
                hosts=hosts,
                days=options["days"],
                renew_days=options["renew_days"],
            )
        except LocalTlsError as exc:
            raise CommandError(str(exc)) from exc
        for item in done:
            why = f" ({item.why})" if item.why else ""
            self.stdout.write(
                _("TLS %(name)s certificate: %(action)s%(why)s, expires %(not_after)s")
                % {
                    "name": item.name,
                    "action": item.action,
                    "why": why,
                    "not_after": format(item.not_after, "%Y-%m-%d"),
                }
            )
        self.stdout.write(
            _("TLS files in %(directory)s; trust %(ca_cert)s to verify them.")
            % {"directory": pki.directory, "ca_cert": pki.ca_cert}
        )
