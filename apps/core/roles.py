"""The three built-in roles, as Django groups.

admin: every permission. operator: read everything, edit bindings, run probes
by hand, acknowledge and resolve alerts, manage silences, label root causes. viewer: read only. Groups are kept
in step by a migration and after every `migrate`; permissions are only ever
added, so local changes to a group survive.
"""

from __future__ import annotations

from typing import Any

KUBEPROBE_APPS = (
    "clusters",
    "catalog",
    "scheduling",
    "runs",
    "alerts",
    "resident",
    "diagnosis",
    "gating",
    "actions",
)
OPERATOR_EXTRA = {
    "scheduling.add_binding",
    "scheduling.change_binding",
    "scheduling.delete_binding",
    "runs.run_probe",
    "scheduling.add_event",
    "alerts.change_alert",  # acknowledge, resolve by hand
    "alerts.add_silence",
    "alerts.change_silence",
    "alerts.delete_silence",
    "diagnosis.change_rundiagnosis",  # confirm or correct a run's root cause
    "diagnosis.change_incident",  # … and an incident's
}
ROLE_NAMES = ("admin", "operator", "viewer")


def _codes(perms: Any) -> dict[str, Any]:
    return {f"{p.content_type.app_label}.{p.codename}": p for p in perms}


def sync_roles(group_model: Any, permission_model: Any) -> None:
    perms = _codes(permission_model.objects.select_related("content_type"))
    view = {
        code
        for code in perms
        if code.split(".")[0] in KUBEPROBE_APPS and code.split(".")[1].startswith("view_")
    }
    wanted = {
        "admin": set(perms),
        "operator": view | (OPERATOR_EXTRA & set(perms)),
        "viewer": view,
    }
    for name, codes in wanted.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.add(*[perms[c] for c in codes])


def sync_roles_migration(apps: Any, schema_editor: Any) -> None:
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations; make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def sync_roles_post_migrate(**kwargs: Any) -> None:
    from django.contrib.auth.models import Group, Permission

    sync_roles(Group, Permission)
