from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.catalog import builtin
from apps.catalog.models import Case, CaseSet, CaseTemplate, RenderConfig


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


@dataclass
class SeedLine:
    """One row `seed_catalog` looked at and what it did."""

    what: str  # template, case, case set
    name: str
    action: str  # created, updated, unchanged, kept
    note: str = ""


def _template_differences(template: CaseTemplate, wanted: dict[str, Any]) -> list[str]:
    return [name for name, value in wanted.items() if getattr(template, name) != value]


@transaction.atomic
def catalog_seed_builtin(*, update: bool = False, image: str | None = None) -> list[SeedLine]:
    """Create the built-in templates, their default cases and the `builtin-probes` set.

    Idempotent. Existing rows are the operator's: they are kept as edited,
    except that `update` resets templates to the shipped definition and adds
    missing members to the case set. Nothing is ever deleted.
    """
    image = image or settings.KUBEPROBE_PROBE_IMAGE
    lines: list[SeedLine] = []
    for shipped in builtin.BUILTIN_TEMPLATES:
        wanted = copy.deepcopy(shipped.fields(image=image))
        template = CaseTemplate.objects.filter(name=shipped.name).first()
        if template is None:
            template = CaseTemplate(name=shipped.name, **wanted)
            template.full_clean()
            template.save()
            lines.append(SeedLine("template", shipped.name, "created"))
        elif not (differences := _template_differences(template, wanted)):
            lines.append(SeedLine("template", shipped.name, "unchanged"))
        elif update:
            for name, value in wanted.items():
                setattr(template, name, value)
            template.full_clean()
            template.save()
            lines.append(SeedLine("template", shipped.name, "updated", ", ".join(differences)))
        else:
            note = f"differs in {', '.join(differences)}; --update resets it"
            lines.append(SeedLine("template", shipped.name, "kept", note))
        for case_def in shipped.cases:
            existing = Case.objects.filter(name=case_def.name).select_related("template").first()
            if existing is not None:
                note = (
                    ""
                    if existing.template_id == template.pk
                    else f"uses template {existing.template.name}, not {template.name}"
                )
                lines.append(SeedLine("case", case_def.name, "kept", note))
                continue
            case = Case(name=case_def.name, template=template, description=case_def.description)
            case.full_clean()
            case.save()
            render = RenderConfig(case=case, name=case_def.name, env=dict(case_def.env))
            render.full_clean()
            render.save()
            lines.append(SeedLine("case", case_def.name, "created"))
    created = {line.name for line in lines if line.what == "case" and line.action == "created"}
    lines.append(_seed_case_set(update=update, new_cases=created))
    return lines


def _seed_case_set(*, update: bool, new_cases: set[str]) -> SeedLine:
    """Create the set; cases created just now join it, others only with `update`."""
    members = Case.objects.filter(name__in=builtin.builtin_case_set_members())
    case_set = CaseSet.objects.filter(name=builtin.BUILTIN_CASE_SET).first()
    if case_set is None:
        case_set = CaseSet(
            name=builtin.BUILTIN_CASE_SET, description=builtin.BUILTIN_CASE_SET_DESCRIPTION
        )
        case_set.full_clean()
        case_set.save()
        case_set.cases.add(*members)
        return SeedLine("case set", case_set.name, "created", f"{len(members)} cases")
    missing = list(members.exclude(pk__in=case_set.cases.values("pk")))
    to_add = [c for c in missing if update or c.name in new_cases]
    left_out = sorted(c.name for c in missing if c not in to_add)
    if not missing:
        return SeedLine("case set", case_set.name, "unchanged")
    if to_add:
        case_set.cases.add(*to_add)
    notes = []
    if to_add:
        notes.append(f"added {', '.join(sorted(c.name for c in to_add))}")
    if left_out:
        notes.append(f"without {', '.join(left_out)}; --update adds them")
    return SeedLine("case set", case_set.name, "updated" if to_add else "kept", "; ".join(notes))
