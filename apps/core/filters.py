"""The base of every filter set: a value a filter cannot use is a 400 naming the
parameter, never silently ignored and never passed on for the database to fail on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.utils.translation import gettext_lazy as _
from rest_framework import filters
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

TRUE_WORDS = frozenset({"true", "1"})
FALSE_WORDS = frozenset({"false", "0"})
# What a bigint column (and Postgres' integer parameters) can hold.
INT_RANGE = (-(2**63), 2**63 - 1)


def _strict_clean(form: forms.Form, filters: dict[str, Any]) -> None:
    """Check the cleaned values of `form` in place; errors are added per parameter."""
    data = form.data
    for name, value in list(form.cleaned_data.items()):
        flt = filters.get(name)
        raw = data.get(form.add_prefix(name)) if hasattr(data, "get") else None
        if isinstance(flt, django_filters.BooleanFilter) and isinstance(raw, str) and raw != "":
            # django-filter maps any unknown word (`-1`, `yes`) to "no filter".
            word = raw.strip().lower()
            if word in TRUE_WORDS:
                form.cleaned_data[name] = True
            elif word in FALSE_WORDS:
                form.cleaned_data[name] = False
            else:
                form.add_error(name, f"Must be true or false, not {raw!r}.")
        elif isinstance(value, datetime) and value.tzinfo is not None:
            # Postgres stores offsets up to ±15:59 only; the instant itself is what counts.
            try:
                form.cleaned_data[name] = value.astimezone(UTC)
            except OverflowError:
                form.add_error(name, "The date and time is out of range once converted to UTC.")
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not INT_RANGE[0] <= value <= INT_RANGE[1]
        ):
            form.add_error(name, "The number is out of range.")


class FilterSet(django_filters.FilterSet):
    """Every API filter set derives from this one (a test checks it)."""

    def get_form_class(self) -> type[forms.Form]:
        base = super().get_form_class()
        filters = self.filters

        def clean(form: forms.Form) -> dict[str, Any]:
            cleaned: dict[str, Any] = base.clean(form)  # type: ignore[arg-type]
            _strict_clean(form, filters)
            return cleaned

        return type(base.__name__, (base,), {"clean": clean})


class SearchFilter(filters.SearchFilter):
    """DRF's `?search=`, refusing NUL (Postgres cannot compare text holding one); the
    filter sets' own text filters refuse it already (Django's form fields do)."""

    def get_search_terms(self, request: Request) -> list[str]:
        if "\x00" in request.query_params.get(self.search_param, ""):
            raise ValidationError({self.search_param: [_("Null characters are not allowed.")]})
        return list(super().get_search_terms(request))
