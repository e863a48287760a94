"""API helpers shared by every app."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from django.utils.text import capfirst
from django.utils.translation import gettext, gettext_lazy
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.said import render_field, render_items, render_known


def _users_of(objects: Iterable[Any], limit: int = 10) -> str:
    """`case "a", case "b" and 3 more` for the objects that still use something."""
    objects = sorted(objects, key=lambda obj: (obj._meta.verbose_name, str(obj)))
    named = [f'{obj._meta.verbose_name} "{obj}"' for obj in objects[:limit]]
    more = len(objects) - len(named)
    if more > 0:
        return gettext("%(named)s and %(more)s more") % {"named": ", ".join(named), "more": more}
    return ", ".join(named)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Model-level ValidationErrors become 400s naming the field, and deleting what
    others still use a 409 naming them, instead of 500s."""
    if isinstance(exc, ProtectedError | RestrictedError):
        used = exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects
        exc = Conflict(
            gettext("Cannot delete it: still used by %(users)s.") % {"users": _users_of(used)}
        )
    elif isinstance(exc, Http404) and _NO_MATCH.match(str(exc)):
        exc = NotFound(_not_found(context))
    elif isinstance(exc, DjangoValidationError):
        detail = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        exc = serializers.ValidationError(detail)
    return drf_exception_handler(exc, context)


# Django's get_object_or_404 (DRF's get_object): "No Cluster matches the given query."
# Other 404s (an unknown format suffix, a view's own) keep DRF's translated "Not found.".
_NO_MATCH = re.compile(r"^No \w+ matches the given query\.$")


def _not_found(context: dict[str, Any]) -> str:
    """ "Cluster “nope” does not exist." in the request's language, naming the model by
    its verbose name (Django's own "No Cluster matches the given query." is English only)."""
    view = context.get("view")
    model = getattr(getattr(view, "queryset", None), "model", None)
    if model is None:
        try:
            model = view.get_queryset().model  # type: ignore[union-attr]
        except Exception:  # a view without a queryset: DRF's translated "Not found."
            return str(NotFound.default_detail)
    kwarg = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")
    value = (getattr(view, "kwargs", None) or {}).get(kwarg)
    name = capfirst(model._meta.verbose_name)
    if value is None:
        return gettext("No such %(model)s.") % {"model": model._meta.verbose_name}
    return gettext("%(model)s “%(value)s” does not exist.") % {"model": name, "value": value}


def run_model_validator(validator: Any, value: Any) -> Any:
    """Run a Django validator inside a DRF field validation, keeping its message."""
    try:
        validator(value)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.messages) from exc
    return value


class ModelCleanMixin:
    """Run the model's clean() from a ModelSerializer, so cross-field rules
    live in one place and the API answers 400 naming the field."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)  # type: ignore[misc]
        model = self.Meta.model  # type: ignore[attr-defined]
        instance = copy.copy(self.instance) if self.instance is not None else model()  # type: ignore[attr-defined]
        concrete = {f.name for f in model._meta.concrete_fields}
        for key, value in attrs.items():
            if key in concrete:
                setattr(instance, key, value)
        try:
            instance.clean()
        except DjangoValidationError as exc:
            detail = (
                exc.message_dict
                if hasattr(exc, "error_dict")
                else {"non_field_errors": exc.messages}
            )
            raise serializers.ValidationError(detail) from exc
        return attrs


class AtomicWritesMixin:
    """Create/update/delete in one transaction, M2M sets included."""

    def perform_create(self, serializer: Any) -> None:
        with transaction.atomic():
            super().perform_create(serializer)  # type: ignore[misc]

    def perform_update(self, serializer: Any) -> None:
        with transaction.atomic():
            super().perform_update(serializer)  # type: ignore[misc]

    def perform_destroy(self, instance: Any) -> None:
        with transaction.atomic():
            super().perform_destroy(instance)  # type: ignore[misc]


class NamedModelViewSet(AtomicWritesMixin, viewsets.ModelViewSet):
    """CRUD of a model addressed by its unique name, with atomic writes. Searches the name
    and description and orders by name or creation unless a subclass says otherwise."""

    lookup_field = "name"
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]


def names_field(queryset: Any, **kwargs: Any) -> serializers.SlugRelatedField:
    """A many-valued relation written and read as a list of names."""
    return serializers.SlugRelatedField(
        many=True, slug_field="name", queryset=queryset, required=False, **kwargs
    )


class SaidTextField(serializers.CharField):
    """A stored event text (apps/core/said.py) read in the request's language: the
    field keeps its name and type; rows without parameters read as stored.
    known=True: an English sentence of ours looked up in the catalogs (summaries)."""

    def __init__(self, *, known: bool = False, **kwargs: Any) -> None:
        self.known = known
        super().__init__(read_only=True, source="*", **kwargs)

    def to_representation(self, value: Any) -> str:
        if self.known:
            return render_known(getattr(value, self.field_name or "") or "")
        return render_field(value, self.field_name or "")


class SaidItemsField(serializers.JSONField):
    """A stored list of dicts whose `message` is an event text (a gate decision's
    reasons), read in the request's language (apps/core/said.py render_items)."""

    def to_representation(self, value: Any) -> Any:
        return render_items(value)


class Conflict(APIException):
    """The request is valid but the object's state refuses it (409), e.g. acknowledging
    an alert that is not firing."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = gettext_lazy("The object's current state does not allow this.")
    default_code = "conflict"
