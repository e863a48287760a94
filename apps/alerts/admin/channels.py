"""Admin for notification channels (redacted config, test sends) and sent notifications."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from apps.alerts.channels import channel_save
from apps.alerts.models import Channel, Notification
from apps.alerts.sending import channel_send_test
from apps.alerts.transports import base as transports
from apps.core.admin_utils import enable_actions, pretty_json


class ChannelForm(forms.ModelForm):
    kind = forms.ChoiceField(choices=())
    config = forms.JSONField(
        required=False,
        label=_("config"),
        help_text=_(
            "The transport's settings as JSON. Secrets show as •••• and are kept when left masked."
        ),
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
    )

    class Meta:
        model = Channel
        fields = ["name", "kind", "enabled", "severities", "matchers", "send_resolved", "language"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = transports.choices()  # type: ignore[attr-defined]
        # Forms posted without it (older scripts) keep the channel's, or get the default.
        self.fields["language"].required = False
        if self.instance.pk and self.instance.config_json:
            stored = json.loads(self.instance.config_json)
            self.initial["config"] = transports.redact(stored, self.instance.kind)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            channel_save(
                name=data["name"],
                kind=data["kind"],
                config=data.get("config") or {},
                channel=self.instance,
                commit=False,
                enabled=data.get("enabled", True),
                severities=data.get("severities") or [],
                matchers=data.get("matchers") or [],
                send_resolved=data.get("send_resolved", True),
                language=data.get("language")
                or self.instance.language
                or Channel.language.field.get_default(),
            )
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for field, errors in exc.message_dict.items():
                    self.add_error(field if field in self.fields else None, errors)
            else:
                raise
        return data


@admin.action(description=_("Send a test notification"), permissions=["change"])
def send_test(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Channel]
) -> None:
    for channel in queryset[:20]:
        notification = channel_send_test(channel_id=channel.pk)
        if notification.status == "sent":
            modeladmin.message_user(
                request,
                gettext("%(channel)s: sent in %(ms)s ms.")
                % {"channel": channel.name, "ms": notification.duration_ms},
                messages.SUCCESS,
            )
        else:
            modeladmin.message_user(
                request, f"{channel.name}: {notification.error}", messages.ERROR
            )


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "language", "enabled", "severities", "disabled_reason"]
    list_filter = ["kind", "enabled", "language"]
    search_fields = ["name"]
    actions = [send_test, *enable_actions("channels")]
    readonly_fields = ["disabled_reason"]

    fields = [
        "name",
        "kind",
        "config",
        "enabled",
        "disabled_reason",
        "severities",
        "matchers",
        "send_resolved",
        "language",
    ]

    # ChannelForm.clean ran channel_save(commit=False) on the instance: it only needs saving.


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "channel",
        "event",
        "severity",
        "title",
        "status",
        "attempts",
        "duration_ms",
        "error",
    ]
    list_select_related = ["channel"]
    list_filter = ["status", "event", "severity", "channel"]
    search_fields = ["title", "error"]
    show_full_result_count = False
    list_per_page = 100
    readonly_fields = ["flips_display"]
    exclude = ["flips"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("flips"))
    def flips_display(self, notification: Notification) -> str:
        return pretty_json([str(f) for f in notification.flips.all()[:200]])
