"""`manage.py api_token issue NAME`: an API token from a shell, printed alone on stdout."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _

from apps.core.i18n import LocalizedHelpCommand, gettext_lazy
from apps.core.services import UnknownUser, api_token_issue


class Command(LocalizedHelpCommand):
    help = gettext_lazy(
        "Issue an API token for a user and print it (only the token on stdout, so "
        "`TOKEN=$(python manage.py api_token issue NAME)` works). A token of that name "
        "gets a new secret; the old one stops working."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        issue = sub.add_parser(
            "issue", help=gettext_lazy("create the token, or give it a new secret")
        )
        issue.add_argument("name", help=gettext_lazy("who uses it, e.g. release-platform"))
        issue.add_argument(
            "--user",
            default=os.environ.get("KUBEPROBE_ADMIN_USER", "admin"),
            help=gettext_lazy("the token acts as this user (default: the trial admin)"),
        )

    def handle(self, *args: Any, action: str, name: str, user: str, **options: Any) -> None:
        if not name.strip() or len(name) > 100:
            raise CommandError(_("the token name must be 1 to 100 characters"))
        try:
            token, raw, created = api_token_issue(username=user, name=name)
        except UnknownUser as error:
            raise CommandError(
                _("%(error)s; create it first (manage.py createsuperuser)") % {"error": error}
            ) from error
        done = (
            _(
                "Token '%(name)s' of %(user)s created (shown once; revoke it in the admin, API tokens)."
            )
            if created
            else _(
                "Token '%(name)s' of %(user)s given a new secret (shown once; revoke it in the admin, API tokens)."
            )
        )
        self.stderr.write(done % {"name": token.name, "user": user})
        self.stdout.write(raw)
