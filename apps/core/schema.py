"""drf-spectacular extensions. Imported by CoreConfig.ready()."""

from typing import Any

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.core.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "API token created in the admin (kp_…).",
        }


ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "ErrorDetail": {
        "type": "object",
        "description": "Why the request was refused.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "ValidationErrors": {
        "type": "object",
        "description": (
            "Bad input: each offending field or query parameter with its messages "
            '(`{"cron": ["…"]}`), or `detail` for a body that cannot be read.'
        ),
        "additionalProperties": {},
    },
}
ERROR_RESPONSES: dict[str, tuple[str, str]] = {
    "400": ("ValidationErrors", "Bad input; the field or parameter is named."),
    "401": ("ErrorDetail", "No credentials, or a wrong or revoked token."),
    "403": ("ErrorDetail", "The caller's role may not do this."),
    "404": ("ErrorDetail", "No such object (or page)."),
    "409": ("ErrorDetail", "The object's state, or what still uses it, refuses this."),
}


def _wanted_errors(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    params = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "query"}
    codes = ["400", "401", "403"]
    if "{" in path or "page" in params:
        codes.append("404")  # an unknown name or id, a page past the last
    if method == "delete":
        codes.append("409")  # still used by others (or the default alert rule)
    return codes


def declare_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every authenticated API operation declares the
    errors it can answer, with their bodies, so clients and schemathesis can rely on them.

    Operations without authentication (the probes' report endpoints) declare their own.
    """
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(ERROR_SCHEMAS)
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if not operation.get("security"):
                continue
            responses = operation["responses"]
            for code in _wanted_errors(method, path, operation):
                component, description = ERROR_RESPONSES[code]
                declared = responses.setdefault(code, {"description": description})
                declared.setdefault("content", {}).setdefault(
                    "application/json", {"schema": {"$ref": f"#/components/schemas/{component}"}}
                )
    return result


def _model_field(field: serializers.Field) -> Any:
    """The model column a serializer field reads directly, if any."""
    model = getattr(getattr(field.parent, "Meta", None), "model", None)
    if model is None or not field.source or "." in field.source or field.source == "*":
        return None
    try:
        column = model._meta.get_field(field.source)
    except FieldDoesNotExist:
        return None
    return column if getattr(column, "concrete", False) else None  # not reverse relations


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema, truthful about read-only model fields.

    DRF drops `allow_null` and `allow_blank` from read-only fields, so their schema
    would refuse the null (a manual run's `binding`, a decision's `check`) and the ""
    (a blank choice such as `root_cause`) that answers carry. The model column says
    what it can hold; this adds it back, for every serializer at once.
    """

    def _map_serializer_field(
        self, field: Any, direction: Any, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_serializer_field(field, direction, bypass_extensions)
        if not field.read_only:
            return schema
        column = _model_field(field)
        if column is None:
            return schema
        if isinstance(field, serializers.ChoiceField) and column.blank:
            if "$ref" in schema:
                schema = {"oneOf": [schema, {"type": "string", "enum": [""]}]}
            elif "enum" in schema and "" not in schema["enum"]:
                schema = {**schema, "enum": [*schema["enum"], ""]}
        if column.null and not schema.get("nullable"):
            if "$ref" in schema:
                schema = {"allOf": [schema], "nullable": True}
            else:
                schema = {**schema, "nullable": True}
        return schema
