from __future__ import annotations

import pytest

from apps.clusters.models import Executor
from apps.clusters.selectors import cluster_group_resolve, clusters_for_targets
from tests.factories import ClusterFactory, ClusterGroupFactory


@pytest.fixture
def fleet() -> dict[str, object]:
    def make(name: str, **labels: str) -> object:
        return ClusterFactory(name=name, executor=Executor.LOCAL, kubeconfig="", labels=labels)

    return {
        "a": make("a", env="prod", region="eu"),
        "b": make("b", env="prod", region="us"),
        "c": make("c", env="staging", region="eu"),
        "d": make("d"),
        "z": ClusterFactory(
            name="z",
            executor=Executor.LOCAL,
            kubeconfig="",
            labels={"topology.kubernetes.io/region": "eu-west-1"},
        ),
    }


def names(qs) -> list[str]:  # type: ignore[no-untyped-def]
    return list(qs.values_list("name", flat=True))


@pytest.mark.django_db
def test_group_resolves_explicit_members(fleet) -> None:  # type: ignore[no-untyped-def]
    group = ClusterGroupFactory()
    group.members.set([fleet["d"], fleet["c"]])
    assert names(cluster_group_resolve(group=group)) == ["c", "d"]


@pytest.mark.django_db
def test_group_resolves_selector_requiring_all_labels(fleet) -> None:  # type: ignore[no-untyped-def]
    assert names(cluster_group_resolve(group=ClusterGroupFactory(selector={"env": "prod"}))) == [
        "a",
        "b",
    ]
    both = ClusterGroupFactory(selector={"env": "prod", "region": "eu"})
    assert names(cluster_group_resolve(group=both)) == ["a"]


@pytest.mark.django_db
def test_selector_keys_with_prefix_and_dots(fleet) -> None:  # type: ignore[no-untyped-def]
    group = ClusterGroupFactory(selector={"topology.kubernetes.io/region": "eu-west-1"})
    assert names(cluster_group_resolve(group=group)) == ["z"]


@pytest.mark.django_db
def test_members_and_selector_union_without_duplicates(fleet) -> None:  # type: ignore[no-untyped-def]
    group = ClusterGroupFactory(selector={"region": "eu"})
    group.members.set([fleet["a"], fleet["d"]])
    assert names(cluster_group_resolve(group=group)) == ["a", "c", "d"]


@pytest.mark.django_db
def test_empty_group_resolves_to_nothing(fleet) -> None:  # type: ignore[no-untyped-def]
    assert names(cluster_group_resolve(group=ClusterGroupFactory())) == []


@pytest.mark.django_db
def test_targets_union_skips_disabled_clusters(fleet) -> None:  # type: ignore[no-untyped-def]
    fleet["b"].enabled = False  # type: ignore[attr-defined]
    fleet["b"].save()  # type: ignore[attr-defined]
    group = ClusterGroupFactory(selector={"env": "prod"})
    assert names(clusters_for_targets(clusters=[fleet["a"], fleet["d"]], groups=[group])) == [
        "a",
        "d",
    ]
    assert names(clusters_for_targets(clusters=[], groups=[group], enabled_only=False)) == [
        "a",
        "b",
    ]
