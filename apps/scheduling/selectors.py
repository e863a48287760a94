"""Reads of the scheduling app."""

from __future__ import annotations

from collections import defaultdict
from itertools import product

from apps.catalog.models import CaseSetMembership
from apps.clusters.models import ClusterGroup
from apps.clusters.selectors import cluster_group_resolve
from apps.scheduling.models import Binding


def scheduled_pairs() -> set[tuple[int, int]]:
    """(case id, cluster id) of every pair some enabled binding runs: its enabled cases
    (own and through case sets) × its enabled clusters (own and through groups).

    A fixed handful of queries plus one per group that enabled bindings target.
    """
    bindings = list(Binding.objects.filter(enabled=True).values_list("pk", flat=True))
    if not bindings:
        return set()
    cases: dict[int, set[int]] = defaultdict(set)
    clusters: dict[int, set[int]] = defaultdict(set)
    for binding_id, case_id in Binding.cases.through.objects.filter(
        binding_id__in=bindings, case__enabled=True
    ).values_list("binding_id", "case_id"):
        cases[binding_id].add(case_id)
    set_members: dict[int, set[int]] = defaultdict(set)
    for set_id, case_id in CaseSetMembership.objects.filter(case__enabled=True).values_list(
        "case_set_id", "case_id"
    ):
        set_members[set_id].add(case_id)
    for binding_id, set_id in Binding.case_sets.through.objects.filter(
        binding_id__in=bindings
    ).values_list("binding_id", "caseset_id"):
        cases[binding_id] |= set_members[set_id]
    for binding_id, cluster_id in Binding.clusters.through.objects.filter(
        binding_id__in=bindings, cluster__enabled=True
    ).values_list("binding_id", "cluster_id"):
        clusters[binding_id].add(cluster_id)
    group_links = list(
        Binding.groups.through.objects.filter(binding_id__in=bindings).values_list(
            "binding_id", "clustergroup_id"
        )
    )
    members: dict[int, set[int]] = {}
    for group in ClusterGroup.objects.filter(pk__in={g for _, g in group_links}):
        members[group.pk] = set(
            cluster_group_resolve(group=group, enabled_only=True).values_list("pk", flat=True)
        )
    for binding_id, group_id in group_links:
        clusters[binding_id] |= members.get(group_id, set())
    out: set[tuple[int, int]] = set()
    for binding_id in bindings:
        out.update(product(cases[binding_id], clusters[binding_id]))
    return out
