from __future__ import annotations

import pytest
from django.contrib.auth.models import Group


def codes(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in group.permissions.select_related("content_type")
    }


@pytest.mark.django_db
def test_roles_exist_with_their_permissions() -> None:
    viewer, operator, admin = codes("viewer"), codes("operator"), codes("admin")
    assert {"clusters.view_cluster", "runs.view_proberun", "scheduling.view_binding"} <= viewer
    assert all(code.split(".")[1].startswith("view_") for code in viewer)
    assert viewer < operator < admin
    assert {"scheduling.change_binding", "scheduling.add_binding", "runs.run_probe"} <= operator
    assert "clusters.change_cluster" not in operator
    assert {"clusters.change_cluster", "auth.change_user", "core.add_apitoken"} <= admin
    assert "core.view_apitoken" not in viewer  # tokens are for admins only


@pytest.mark.django_db
def test_viewer_user_has_no_change_permission(make_user) -> None:  # type: ignore[no-untyped-def]
    viewer = make_user("viewer")
    assert viewer.has_perm("clusters.view_cluster")
    assert not any(
        viewer.has_perm(f"{app}.{verb}_{model}")
        for app, model in [("clusters", "cluster"), ("scheduling", "binding"), ("catalog", "case")]
        for verb in ("add", "change", "delete")
    )
