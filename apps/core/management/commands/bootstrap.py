from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from apps.core.i18n import LocalizedHelpCommand, gettext_lazy


class Command(LocalizedHelpCommand):
    help = gettext_lazy(
        "Make sure an admin login exists for a trial install. The password comes from "
        "KUBEPROBE_ADMIN_PASSWORD, or is generated once and kept in var/admin-password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=os.environ.get("KUBEPROBE_ADMIN_USER", "admin"))

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        password_file = settings.VAR_DIR / "admin-password"
        password = os.environ.get("KUBEPROBE_ADMIN_PASSWORD", "")
        source = "KUBEPROBE_ADMIN_PASSWORD"
        if not password:
            if not password_file.exists():
                settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
                password_file.write_text(secrets.token_urlsafe(12))
                password_file.chmod(0o600)
            password = password_file.read_text().strip()
            source = str(password_file)
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        if created or source == "KUBEPROBE_ADMIN_PASSWORD" or not user.has_usable_password():
            user.set_password(password)
            user.save()
            user.groups.add(Group.objects.get(name="admin"))
        elif not user.check_password(password):
            self.stdout.write(
                _("Admin user '%(username)s' exists with a password set elsewhere; left as is.")
                % {"username": username}
            )
            return
        self.stdout.write(
            _("Admin login: %(username)s / %(password)s  (from %(source)s)")
            % {"username": username, "password": password, "source": source}
        )
