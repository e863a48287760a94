from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import admin as auth_admin
from django.contrib.auth.models import Group, Permission, User
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from apps.core.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens for downstream platforms. The secret is shown once, on creation."""

    list_display = [
        "name",
        "user",
        "prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_select_related = ["user"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    autocomplete_fields = ["user"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:  # type: ignore[override]
        if obj is None:
            return ["user", "name", "expires_at"]
        return ["user", "name", "prefix", "expires_at", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if not change:
            raw = obj.issue()
            super().save_model(request, obj, form, change)
            self.message_user(
                request,
                _("Token for '%(name)s': %(raw)s — copy it now, it will not be shown again.")
                % {"name": obj.name, "raw": raw},
                messages.WARNING,
            )
            return
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Revoke selected tokens"), permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(
            request, _("Revoked %(count)s token(s).") % {"count": count}, messages.SUCCESS
        )


# Permission names are written in English when the tables are migrated ("Can add
# cluster"); the group and user forms list them in the admin's language instead.
_ACTIONS = {
    "add": gettext_noop("Can add %(model)s"),
    "change": gettext_noop("Can change %(model)s"),
    "delete": gettext_noop("Can delete %(model)s"),
    "view": gettext_noop("Can view %(model)s"),
}


def permission_label(permission: Permission) -> str:
    """ "告警 | 告警规则 | 可以添加 告警规则" for the permission add_alertrule."""
    model = permission.content_type.model_class()
    action = permission.codename.split("_", 1)[0]
    if model is None:
        return str(permission)
    if action in _ACTIONS and permission.codename == f"{action}_{model._meta.model_name}":
        name = gettext(_ACTIONS[action]) % {"model": model._meta.verbose_name}
    else:  # a model's own permission (Meta.permissions), marked with gettext_noop there
        name = gettext(permission.name)
    return f"{model._meta.app_config.verbose_name} | {model._meta.verbose_name} | {name}"


class _TranslatedPermissions:
    def formfield_for_manytomany(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        field = super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]
        if field is not None and db_field.name in ("permissions", "user_permissions"):
            field.label_from_instance = permission_label
        return field


class GroupAdmin(_TranslatedPermissions, auth_admin.GroupAdmin):  # type: ignore[misc]
    pass


class UserAdmin(_TranslatedPermissions, auth_admin.UserAdmin):  # type: ignore[misc]
    pass


for _model, _admin in ((Group, GroupAdmin), (User, UserAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)

# Django's own admin text its zh_Hans catalog lacks (admin/app_list.html, Django 5.1+):
# marked here so `make messages` keeps its translation in apps/core's catalog.
gettext_noop("Change or view list link")
