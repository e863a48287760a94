"""Admin for silences, filtered by whether they are active now."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.alerts.models import Silence


class SilenceForm(forms.ModelForm):
    class Meta:
        model = Silence
        fields = ["matchers", "starts_at", "ends_at", "comment"]


class ActiveFilter(admin.SimpleListFilter):
    title = "active"
    parameter_name = "active"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Active now"), ("future", "Not started"), ("past", "Ended")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Silence]) -> QuerySet[Silence]:
        now = timezone.now()
        if self.value() == "yes":
            return queryset.filter(starts_at__lte=now, ends_at__gt=now)
        if self.value() == "future":
            return queryset.filter(starts_at__gt=now)
        if self.value() == "past":
            return queryset.filter(ends_at__lte=now)
        return queryset


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    form = SilenceForm
    list_display = ["__str__", "starts_at", "ends_at", "comment", "created_by", "event"]
    list_filter = [ActiveFilter]
    search_fields = ["comment"]
    list_select_related = ["created_by", "event"]
    show_full_result_count = False

    def save_model(self, request: HttpRequest, obj: Silence, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
