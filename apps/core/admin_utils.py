"""Small pieces shared by the apps' admin modules."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import translation
from django.utils.functional import Promise, lazy
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from apps.core.said import render_field, render_known


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value back: for secrets."""

    def format_value(self, value: Any) -> None:
        return None


class OptionalJSONField(forms.JSONField):
    """A JSON form field for a nullable "unset means inherit" value: empty, not `null`,
    when unset (and empty input saves as unset)."""

    def prepare_value(self, value: Any) -> Any:
        if value is None:
            return ""
        return super().prepare_value(value)


def pretty_json(value: Any) -> str:
    return format_html(
        "<pre style='margin:0'>{}</pre>", json.dumps(value, indent=2, sort_keys=True)
    )


def lazy_format(message: str, **values: Any) -> str:
    """``gettext(message) % values``, evaluated when shown, in the request's language
    (action descriptions are made once, at import)."""
    return lazy(lambda: gettext(message) % {k: str(v) for k, v in values.items()}, str)()


def enable_actions(
    noun: str | Promise, setter: Callable[[QuerySet[Any], bool], int] | None = None
) -> tuple[Callable[..., None], Callable[..., None]]:
    """Bulk enable/disable actions that report what they did."""

    def apply(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any], value: bool
    ) -> None:
        count = setter(queryset, value) if setter else queryset.update(enabled=value)
        text = _("Enabled %(count)s %(noun)s.") if value else _("Disabled %(count)s %(noun)s.")
        modeladmin.message_user(request, text % {"count": count, "noun": noun}, messages.SUCCESS)

    @admin.action(
        description=lazy_format(gettext_noop("Enable selected %(noun)s"), noun=noun),
        permissions=["change"],
    )
    def enable(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        apply(modeladmin, request, queryset, True)

    @admin.action(
        description=lazy_format(gettext_noop("Disable selected %(noun)s"), noun=noun),
        permissions=["change"],
    )
    def disable(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
    ) -> None:
        apply(modeladmin, request, queryset, False)

    # The action's name is posted back by the form: the English noun, whatever the language.
    with translation.override(None):
        name = str(noun).replace(" ", "_")
    enable.__name__ = f"enable_{name}"
    disable.__name__ = f"disable_{name}"
    return enable, disable


def said_column(field: str, description: Any) -> Any:  # Any: fits the stubs' field lists
    """A readonly admin column/field showing an event text stored with its message
    (apps/core/said.py) in the admin's language."""

    @admin.display(description=description)
    def show(obj: Any) -> str:
        return render_field(obj, field) or "-"

    show.__name__ = f"{field}_said"
    return show


def known_column(field: str, description: Any) -> Any:  # as said_column
    """A readonly admin field showing a stored English sentence of ours (a shipped
    rule's summary) in the admin's language (apps/core/said.py render_known)."""

    @admin.display(description=description)
    def show(obj: Any) -> str:
        return render_known(getattr(obj, field) or "") or "-"

    show.__name__ = f"{field}_known"
    return show
