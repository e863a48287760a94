from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.core.crypto import hash_token
from apps.core.said import render_field

TOKEN_PREFIX = "kp_"  # noqa: S105 (a marker, not a secret)


class TimelineEntry(models.Model):
    """One line of a timeline (an alert's, an incident's): what, by whom, when.
    Subclasses add the owner's ForeignKey, the `kind` with its choices, and indexes."""

    text = models.TextField()
    # The message and its parameters, to render `text` in the reader's language (said.py).
    text_params = models.JSONField(null=True, blank=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    at = models.DateTimeField(default=timezone.now)
    kind: str

    class Meta:
        abstract = True
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind}: {render_field(self, 'text')[:60]}"


class TimeStampedModel(models.Model):
    # No verbose names here: they would migrate every app's models (named in docs/i18n.md).
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class ApiToken(models.Model):
    """A bearer token for a downstream platform. Only its hash is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        verbose_name=_("user"),
    )
    name = models.CharField(
        max_length=100, help_text=_("Who uses it, e.g. 'release-platform'."), verbose_name=_("name")
    )
    prefix = models.CharField(
        max_length=12,
        editable=False,
        help_text=_("First characters, to tell tokens apart."),
        verbose_name=_("prefix"),
    )
    key_hash = models.CharField(
        max_length=64, unique=True, editable=False, verbose_name=_("key hash")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expires at"))
    revoked_at = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("revoked at")
    )
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("last used at")
    )

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="core_apitoken_user_name_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()

    def issue(self) -> str:
        """Generate a new secret for this token; the caller shows it once."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.prefix = raw[:10]
        self.key_hash = hash_token(raw)
        return raw
