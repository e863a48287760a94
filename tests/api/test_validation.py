"""Bad input is a 400 naming the field, never a 500, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from apps.catalog.models import Case
from apps.clusters.models import Cluster, ClusterGroup
from apps.scheduling.models import Binding
from tests.api.conftest import row_counts
from tests.factories import make_kubeconfig

pytestmark = pytest.mark.django_db

KUBECONFIG = make_kubeconfig()


def kubeconfig_with(**overrides: Any) -> str:
    doc = yaml.safe_load(KUBECONFIG)
    doc.update(overrides)
    return yaml.safe_dump(doc)


def binding(**fields: Any) -> dict[str, Any]:
    return {"name": "new-binding", "clusters": ["alpha"], "cases": ["kase"], **fields}


def cluster(**fields: Any) -> dict[str, Any]:
    return {"name": "new-cluster", "kubeconfig": KUBECONFIG, **fields}


def template(**fields: Any) -> dict[str, Any]:
    return {"name": "new-template", "image": "ghcr.io/x/probe:1", **fields}


def case(**fields: Any) -> dict[str, Any]:
    return {"name": "new-case", "template": "tmpl", **fields}


def error_at(body: Any, path: tuple[str, ...]) -> list[str]:
    """The error messages at `path` in a DRF error body (fails if absent)."""
    node = body
    for key in path:
        assert isinstance(node, dict) and key in node, f"no error under {path!r}: {body!r}"
        node = node[key]
    assert isinstance(node, list) and node and all(isinstance(m, str) and m for m in node), node
    return node


def assert_rejected(
    api: APIClient, method: str, url: str, payload: dict[str, Any], path: tuple[str, ...]
) -> list[str]:
    before = row_counts()
    response = getattr(api, method)(url, payload, format="json")
    assert response.status_code == 400, (response.status_code, response.content[:500])
    messages = error_at(response.json(), path)
    assert row_counts() == before
    return messages


@pytest.mark.parametrize(
    ("url", "payload", "path"),
    [
        # bindings
        pytest.param(
            "/api/v1/bindings/", binding(cron="61 * * * *"), ("cron",), id="cron-minute-61"
        ),
        pytest.param("/api/v1/bindings/", binding(cron="* * *"), ("cron",), id="cron-3-fields"),
        pytest.param("/api/v1/bindings/", binding(cron="0 25 * * *"), ("cron",), id="cron-hour-25"),
        pytest.param(
            "/api/v1/bindings/",
            binding(cron="*/5 * * * *", interval_seconds=60),
            ("cron",),
            id="cron-and-interval",
        ),
        pytest.param(
            "/api/v1/bindings/", binding(interval_seconds=0), ("interval_seconds",), id="interval-0"
        ),
        pytest.param(
            "/api/v1/bindings/",
            {"name": "new-binding", "cases": ["kase"], "interval_seconds": 60},
            ("clusters",),
            id="binding-no-targets",
        ),
        pytest.param(
            "/api/v1/bindings/",
            {"name": "new-binding", "clusters": ["alpha"], "interval_seconds": 60},
            ("cases",),
            id="binding-no-subjects",
        ),
        pytest.param(
            "/api/v1/bindings/",
            binding(clusters=["nope"]),
            ("clusters",),
            id="binding-unknown-cluster",
        ),
        pytest.param("/api/v1/bindings/", binding(name="bind"), ("name",), id="binding-dup-name"),
        pytest.param(
            "/api/v1/bindings/",
            binding(event_triggers="nope"),
            ("event_triggers",),
            id="events-not-list",
        ),
        pytest.param(
            "/api/v1/bindings/",
            binding(event_triggers=[{"kind": "Not A Word"}]),
            ("event_triggers",),
            id="events-bad-kind",
        ),
        pytest.param(
            "/api/v1/bindings/",
            binding(event_triggers=[{"kind": "upgrade", "when": "now"}]),
            ("event_triggers",),
            id="events-extra-key",
        ),
        # cluster groups
        pytest.param(
            "/api/v1/cluster-groups/",
            {"name": "new-group", "members": ["alpha", "nope"]},
            ("members",),
            id="group-unknown-member",
        ),
        pytest.param("/api/v1/cluster-groups/", {"name": "grp"}, ("name",), id="group-dup-name"),
        pytest.param(
            "/api/v1/cluster-groups/",
            {"name": "new-group", "selector": {"bad key!": "x"}},
            ("selector",),
            id="group-bad-selector",
        ),
        # clusters
        pytest.param(
            "/api/v1/clusters/",
            cluster(kubeconfig="a: [b"),
            ("kubeconfig",),
            id="kubeconfig-not-yaml",
        ),
        pytest.param(
            "/api/v1/clusters/",
            cluster(kubeconfig="- just\n- a list\n"),
            ("kubeconfig",),
            id="kubeconfig-not-mapping",
        ),
        pytest.param(
            "/api/v1/clusters/",
            cluster(context="elsewhere"),
            ("context",),
            id="kubeconfig-no-context",
        ),
        pytest.param(
            "/api/v1/clusters/",
            cluster(kubeconfig=kubeconfig_with(clusters=[{"name": "ctx-cluster", "cluster": {}}])),
            ("kubeconfig",),
            id="kubeconfig-no-server",
        ),
        pytest.param(
            "/api/v1/clusters/",
            cluster(kubeconfig=make_kubeconfig(server="ftp://10.0.0.1")),
            ("kubeconfig",),
            id="kubeconfig-server-not-http",
        ),
        pytest.param(
            "/api/v1/clusters/",
            {"name": "new-cluster", "executor": "kubernetes"},
            ("kubeconfig",),
            id="kubernetes-without-kubeconfig",
        ),
        pytest.param(
            "/api/v1/clusters/",
            cluster(kubeconfig=""),
            ("kubeconfig",),
            id="kubernetes-blank-kubeconfig",
        ),
        pytest.param("/api/v1/clusters/", cluster(name="alpha"), ("name",), id="cluster-dup-name"),
        pytest.param(
            "/api/v1/clusters/",
            cluster(namespace="Not_DNS"),
            ("namespace",),
            id="cluster-namespace",
        ),
        pytest.param(
            "/api/v1/clusters/",
            cluster(labels={"bad key!": "x"}),
            ("labels",),
            id="labels-bad-key",
        ),
        pytest.param(
            "/api/v1/clusters/",
            cluster(labels={"team": "-starts-with-dash"}),
            ("labels",),
            id="labels-bad-value",
        ),
        pytest.param(
            "/api/v1/clusters/",
            cluster(labels=["team=a"]),
            ("labels",),
            id="labels-not-object",
        ),
        # templates
        pytest.param(
            "/api/v1/templates/",
            template(default_env={"1BAD": "x"}),
            ("default_env",),
            id="template-env-digit",
        ),
        pytest.param(
            "/api/v1/templates/",
            template(default_env={"has-dash": "x"}),
            ("default_env",),
            id="template-env-dash",
        ),
        pytest.param(
            "/api/v1/templates/",
            template(default_env={"OK": 1}),
            ("default_env",),
            id="template-env-non-string",
        ),
        pytest.param(
            "/api/v1/templates/",
            template(resources={"limits": {"cpu": "lots"}}),
            ("resources",),
            id="template-resources-quantity",
        ),
        pytest.param(
            "/api/v1/templates/",
            template(resources={"wishes": {"cpu": "1"}}),
            ("resources",),
            id="template-resources-section",
        ),
        pytest.param(
            "/api/v1/templates/", template(name="tmpl"), ("name",), id="template-dup-name"
        ),
        # cases
        pytest.param(
            "/api/v1/cases/",
            case(render_config={"name": "r", "env": {"1BAD": "x"}}),
            ("render_config", "env"),
            id="render-env-digit",
        ),
        pytest.param(
            "/api/v1/cases/",
            case(render_config={"name": "r", "env": {"has-dash": "x"}}),
            ("render_config", "env"),
            id="render-env-dash",
        ),
        pytest.param(
            "/api/v1/cases/",
            case(render_config={"name": "r", "resources": {"requests": {"memory": "1 GB"}}}),
            ("render_config", "resources"),
            id="render-resources-quantity",
        ),
        pytest.param(
            "/api/v1/cases/", case(template="nope"), ("template",), id="case-unknown-template"
        ),
        pytest.param("/api/v1/cases/", case(name="kase"), ("name",), id="case-dup-name"),
        # case sets
        pytest.param(
            "/api/v1/case-sets/",
            {"name": "new-set", "cases": ["nope"]},
            ("cases",),
            id="set-unknown-case",
        ),
        pytest.param("/api/v1/case-sets/", {"name": "kset"}, ("name",), id="set-dup-name"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(
    api: APIClient, world: dict[str, Any], url: str, payload: dict[str, Any], path: tuple[str, ...]
) -> None:
    assert_rejected(api, "post", url, payload, path)


def test_cron_error_says_what_is_wrong(api: APIClient, world: dict[str, Any]) -> None:
    [message] = assert_rejected(
        api, "post", "/api/v1/bindings/", binding(cron="61 * * * *"), ("cron",)
    )
    assert "61" in message


def test_env_error_names_the_bad_keys(api: APIClient, world: dict[str, Any]) -> None:
    [message] = assert_rejected(
        api,
        "post",
        "/api/v1/templates/",
        template(default_env={"1BAD": "x", "GOOD": "y", "has-dash": "z"}),
        ("default_env",),
    )
    assert "1BAD" in message and "has-dash" in message and "GOOD" not in message


@pytest.mark.parametrize(
    ("url", "payload", "path"),
    [
        pytest.param(
            "/api/v1/bindings/bind/", {"cron": "61 * * * *"}, ("cron",), id="binding-cron"
        ),
        pytest.param(
            "/api/v1/bindings/bind/",
            {"cron": "*/5 * * * *"},
            ("cron",),
            id="binding-cron-and-interval",
        ),
        pytest.param(
            "/api/v1/bindings/bind/", {"clusters": []}, ("clusters",), id="binding-drop-targets"
        ),
        pytest.param(
            "/api/v1/bindings/bind/", {"cases": []}, ("cases",), id="binding-drop-subjects"
        ),
        pytest.param(
            "/api/v1/clusters/alpha/",
            {"kubeconfig": "a: [b"},
            ("kubeconfig",),
            id="cluster-kubeconfig",
        ),
        pytest.param(
            "/api/v1/clusters/alpha/", {"context": "zzz"}, ("context",), id="cluster-context"
        ),
        pytest.param(
            "/api/v1/clusters/alpha/",
            {"kubeconfig": ""},
            ("kubeconfig",),
            id="cluster-clear-kubeconfig",
        ),
        pytest.param(
            "/api/v1/cluster-groups/grp/", {"members": ["nope"]}, ("members",), id="group-members"
        ),
        pytest.param(
            "/api/v1/templates/tmpl/",
            {"default_env": {"1BAD": "x"}},
            ("default_env",),
            id="template-env",
        ),
        pytest.param(
            "/api/v1/cases/kase/",
            {"render_config": {"name": "r", "env": {"has-dash": "x"}}},
            ("render_config", "env"),
            id="case-render-env",
        ),
    ],
)
def test_patch_rejects_bad_input_and_changes_nothing(
    api: APIClient, world: dict[str, Any], url: str, payload: dict[str, Any], path: tuple[str, ...]
) -> None:
    before = api.get(url).json()
    assert_rejected(api, "patch", url, payload, path)
    assert api.get(url).json() == before


def test_failed_cluster_patch_keeps_stored_kubeconfig(
    api: APIClient, world: dict[str, Any]
) -> None:
    stored = Cluster.objects.get(name="alpha")
    assert_rejected(
        api, "patch", "/api/v1/clusters/alpha/", {"kubeconfig": "a: [b"}, ("kubeconfig",)
    )
    after = Cluster.objects.get(name="alpha")
    assert after.kubeconfig == stored.kubeconfig
    assert after.kubeconfig_fingerprint == stored.kubeconfig_fingerprint


def test_failed_binding_patch_keeps_schedule(api: APIClient, world: dict[str, Any]) -> None:
    assert_rejected(api, "patch", "/api/v1/bindings/bind/", {"cron": "* * *"}, ("cron",))
    bound = Binding.objects.get(name="bind")
    assert (bound.interval_seconds, bound.cron) == (60, "")
    assert bound.periodic_task is not None and bound.periodic_task.interval.every == 60


def test_unknown_group_member_creates_no_group(api: APIClient, world: dict[str, Any]) -> None:
    assert_rejected(
        api,
        "post",
        "/api/v1/cluster-groups/",
        {"name": "new-group", "members": ["alpha", "nope"]},
        ("members",),
    )
    assert not ClusterGroup.objects.filter(name="new-group").exists()


def test_bad_render_config_creates_no_case(api: APIClient, world: dict[str, Any]) -> None:
    assert_rejected(
        api,
        "post",
        "/api/v1/cases/",
        case(render_config={"name": "r", "env": {"1BAD": "x"}}),
        ("render_config", "env"),
    )
    assert not Case.objects.filter(name="new-case").exists()


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(
            {"current-context": "c", "contexts": [{"name": "c", "context": "oops"}]},
            id="context-entry-not-mapping",
        ),
        pytest.param(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "x"}}],
                "clusters": [{"name": "x", "cluster": "not-a-mapping"}],
            },
            id="cluster-entry-not-mapping",
        ),
        pytest.param(
            {"current-context": "c", "contexts": [{"name": "c", "context": {"cluster": ["x"]}}]},
            id="cluster-name-is-list",
        ),
        pytest.param(
            {"current-context": "c", "contexts": {"c": {}}},
            id="contexts-not-list",
        ),
        pytest.param(
            {**yaml.safe_load(KUBECONFIG), "clusters": {"ctx-cluster": {}}},
            id="clusters-not-list",
        ),
        pytest.param(
            {**yaml.safe_load(KUBECONFIG), "users": "nobody"},
            id="users-not-list",
        ),
        pytest.param({"apiVersion": "v1", "kind": "Config"}, id="no-current-context"),
        pytest.param(
            {**yaml.safe_load(KUBECONFIG), "users": []},
            id="context-user-missing",
        ),
    ],
)
def test_malformed_kubeconfig_is_a_400_on_kubeconfig_or_context(
    api: APIClient, world: dict[str, Any], doc: dict[str, Any]
) -> None:
    before = row_counts()
    response = api.post("/api/v1/clusters/", cluster(kubeconfig=yaml.safe_dump(doc)), format="json")
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert set(body) & {"kubeconfig", "context"}, body
    assert row_counts() == before
