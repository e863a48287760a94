from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.catalog.models import Case, RenderConfig


@transaction.atomic
def case_set_render_config(
    *, case: Case, render_config: dict[str, Any] | None
) -> RenderConfig | None:
    """Replace the case's render config (None removes it)."""
    if render_config is None:
        RenderConfig.objects.filter(case=case).delete()
        case._state.fields_cache.pop("render_config", None)  # forget the deleted row
        return None
    render, _ = RenderConfig.objects.update_or_create(case=case, defaults=render_config)
    case.render_config = render
    return render
