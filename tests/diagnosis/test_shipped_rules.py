"""Every shipped rule: its example reaches exactly it through the whole ordered tree,
and the data migration installed the same rules in the same order."""

from __future__ import annotations

from typing import Any

import pytest

from apps.diagnosis.defaults import RULES, example_of, rule_specs
from apps.diagnosis.models import DiagnosisRule
from apps.diagnosis.rules import Evidence, first_match, pattern_error, signature


@pytest.mark.parametrize("rule", RULES, ids=[r["name"] for r in RULES])
def test_each_shipped_rule_wins_for_its_example(rule: dict[str, Any]) -> None:
    matched = first_match(rule_specs(), example_of(rule))
    assert matched is not None and matched.name == rule["name"]
    assert matched.category == rule["category"]


def test_shipped_patterns_are_valid_and_names_unique() -> None:
    assert len({r["name"] for r in RULES}) == len(RULES)
    for spec in rule_specs():
        for field in ("case_pattern", "step_pattern", "error_pattern", "reason_pattern"):
            assert pattern_error(getattr(spec, field)) == ""


@pytest.mark.django_db
def test_the_migration_ships_the_rules_in_order() -> None:
    stored = list(DiagnosisRule.objects.filter(shipped=True).values_list("name", flat=True))
    assert stored == [r["name"] for r in RULES]


def test_an_etcd_case_refusal_is_etcd_but_the_same_text_elsewhere_is_the_api_server() -> None:
    # The on-call report: stopping etcd hinted "API server" for both etcd alerts.
    refusal = "<urlopen error [Errno 111] Connection refused>"
    etcd = first_match(rule_specs(), Evidence(case_kind="etcd", step="put", error=refusal))
    pod = first_match(rule_specs(), Evidence(case_kind="lifecycle", step="create", error=refusal))
    assert etcd is not None and etcd.category == "etcd"
    assert pod is not None and pod.category == "apiserver"


def test_reasons_and_events_count_as_evidence() -> None:
    evidence = Evidence(
        case_kind="lifecycle",
        step="ready",
        error="not reached after 120 s",
        events=("Warning FailedMount: MountVolume.SetUp failed for volume data",),
    )
    matched = first_match(rule_specs(), evidence)
    assert matched is not None and matched.category == "storage"


def test_signature_ignores_names_addresses_and_numbers_but_not_the_failure() -> None:
    a = signature(
        category="image",
        step="running",
        error='Back-off pulling image "r.io/a:1" on kubeprobe-pod-x7k2p at 10.0.0.1:5000 after 31 s',
        cluster_names=("prod-1",),
    )
    b = signature(
        category="image",
        step="running",
        error='Back-off pulling image "r.io/a:1" on kubeprobe-pod-q9z1m at 10.0.9.9:5000 after 12 s',
        cluster_names=("prod-2",),
    )
    assert a == b
    assert a != signature(category="image", step="running", error="manifest unknown")
