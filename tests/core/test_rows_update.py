"""rows_update: many rows' fields written with one statement, every column type intact."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.alerts.models import Alert
from apps.core.db import rows_update
from apps.runs.models import ProbeRun
from tests.alerts.conftest import add_run
from tests.factories import CaseFactory, ClusterFactory

pytestmark = pytest.mark.django_db


def test_many_rows_and_types_in_one_statement() -> None:
    case, cluster, other = CaseFactory(), ClusterFactory(), ClusterFactory()
    runs = [add_run(case, cluster, ok=False), add_run(case, other, ok=True)]
    when = datetime(2026, 12, 8, 3, 55, 26, 123456, tzinfo=UTC)
    summary = 'l\'etcd "lent" — 集群 etcd 慢 \\ {"not": "json"}'
    runs[0].root_cause, runs[0].root_cause_summary = "etcd", summary
    runs[0].root_cause_confidence, runs[0].finished_at = 0.875, when
    runs[0].steps = [{"name": "put", "ok": False, "error": "deadline"}]
    runs[0].ok, runs[0].duration_ms = True, 12_345
    runs[1].root_cause, runs[1].root_cause_summary = "", ""
    runs[1].root_cause_confidence, runs[1].steps = None, []  # NULL, and an empty JSON list
    fields = ["root_cause", "root_cause_summary", "root_cause_confidence", "finished_at"]
    fields += ["steps", "ok", "duration_ms"]
    with CaptureQueriesContext(connection) as queries:
        assert rows_update(model=ProbeRun, objects=list(reversed(runs)), fields=fields) == 2
    assert len(queries.captured_queries) == 1
    first, second = (ProbeRun.objects.get(pk=r.pk) for r in runs)
    assert (first.root_cause, first.root_cause_summary) == ("etcd", summary)
    assert (first.root_cause_confidence, first.finished_at) == (0.875, when)
    assert first.steps == [{"name": "put", "ok": False, "error": "deadline"}]
    assert (first.ok, first.duration_ms) == (True, 12_345)
    assert (second.root_cause_confidence, second.steps, second.ok) == (None, [], True)


def test_foreign_keys_are_written_and_cleared() -> None:
    case, cluster = CaseFactory(), ClusterFactory()
    run = add_run(case, cluster, ok=True)
    alert = Alert.objects.create(case=case, cluster=cluster, latest_run=run)
    alert.latest_run, alert.last_run_id = None, run.pk
    rows_update(model=Alert, objects=[alert], fields=["latest_run", "last_run"])
    alert.refresh_from_db()
    assert (alert.latest_run_id, alert.last_run_id) == (None, run.pk)
    assert rows_update(model=Alert, objects=[], fields=["latest_run"]) == 0
