"""The post-run pipeline: each finished pair is judged, then pushed to dashboards."""

from __future__ import annotations

from typing import Any

import pytest

from apps.alerts import services
from apps.postrun import pipeline
from apps.postrun.tasks import process_finished_runs
from tests.alerts.conftest import add_run
from tests.factories import CaseFactory, ClusterFactory


@pytest.mark.django_db
def test_a_finished_pair_is_judged_then_pushed(monkeypatch: pytest.MonkeyPatch) -> None:
    pushed: list[dict[str, Any]] = []
    monkeypatch.setattr(pipeline, "push_pair", lambda **cell: pushed.append(cell))
    case, cluster = CaseFactory(), ClusterFactory()
    run = add_run(case, cluster, False)
    alert = pipeline.finished_pair_process(case_id=case.pk, cluster_id=cluster.pk)
    assert alert is not None and alert.latest_run_id == run.pk
    # The push carries what the judgement decided, not what was there before.
    assert pushed == [
        {
            "case_id": case.pk,
            "cluster_id": cluster.pk,
            "state": alert.state,
            "severity": alert.severity,
            "latest_state": "failed",
            "latest_run_id": run.pk,
        }
    ]


def test_one_failing_pair_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    judged: list[tuple[int, int]] = []

    def evaluate(*, case_id: int, cluster_id: int) -> None:  # judged, never pushed
        if case_id == 2:
            raise RuntimeError("deadlock detected")
        judged.append((case_id, cluster_id))

    monkeypatch.setattr(services, "alert_evaluate", evaluate)
    monkeypatch.setattr(pipeline, "_diagnose", lambda case_id, cluster_id: [])  # no database here
    process_finished_runs([(1, 1), (2, 2), (3, 3)])
    assert judged == [(1, 1), (3, 3)]
