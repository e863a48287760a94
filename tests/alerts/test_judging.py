"""No lost judgement: every committed finished run is judged, driven from the database.

The report path's hand-off (handoff.py) is only the fast path; these tests
break it the two ways it can fail (its process is killed after the report is
committed, the broker refuses the publish) and show the watermark sweep
(judging.py) still judges the pair: the alert fires once and the dashboard
cell is pushed through the real Redis channel layer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from kombu.exceptions import OperationalError

from apps.alerts import judging, services
from apps.alerts.models import Alert, AlertFlip, AlertState, FlipEvent, JudgeWatermark
from apps.core.crypto import hash_token
from apps.dashboard import push
from apps.postrun import pipeline
from apps.postrun.tasks import process_finished_runs
from apps.runs.models import ProbeRun, RunState
from apps.runs.reporting import handoff
from apps.runs.reporting.accept import run_report
from tests.alerts.conftest import add_run
from tests.factories import CaseFactory, ClusterFactory, ProbeRunFactory
from tests.runs.test_kube_loop import GroupListener
from tests.runs.test_loop import ROOT, database_url
from tests.utils import wait_for

PROCESS = pipeline.finished_pairs_process

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "run-token-for-judging"
FAILED = json.dumps(
    {
        "ok": False,
        "errors": ["step ready failed: 0/3 nodes are available"],
        "steps": [{"name": "ready", "ok": False, "duration_ms": 900, "error": "0/3 nodes"}],
    }
)

# Stores one report through the real report path (group commit on Postgres),
# with a hand-off that would publish only an hour later; says what it holds, then waits
# to be killed.
REPORTER = """
import sys, threading
import django
django.setup()
from apps.runs.reporting import handoff
handoff.FLUSH_SECONDS = 3600
from apps.runs.reporting import handoff
from apps.runs.reporting.accept import run_report
state = run_report(run_id=int(sys.argv[1]), token=sys.argv[2], body=sys.argv[3].encode())
print("stored", state, sorted(handoff._handoff.pairs), flush=True)
threading.Event().wait()
"""


def running_run(case: Any, cluster: Any) -> ProbeRun:
    now = timezone.now()
    return ProbeRunFactory(
        case=case,
        cluster=cluster,
        state=RunState.RUNNING,
        token_hash=hash_token(TOKEN),
        dispatched_at=now,
        deadline=now + timedelta(minutes=5),
    )


def fires_once(case: Any, cluster: Any, run: ProbeRun) -> Alert:
    alert = Alert.objects.get(case=case, cluster=cluster)
    assert alert.state == AlertState.FIRING
    assert alert.latest_run_id == run.pk
    flips = AlertFlip.objects.filter(alert=alert, event=FlipEvent.FIRING)
    assert [f.run_id for f in flips] == [run.pk]
    return alert


@pytest.fixture
def listener() -> Any:
    made: list[GroupListener] = []

    def make(groups: list[str]) -> GroupListener:
        made.append(GroupListener(groups))
        return made[-1]

    yield make
    for one in made:
        one.stop()


def test_a_report_whose_process_is_killed_before_the_handoff_is_still_judged(
    settings: Any, listener: Any
) -> None:
    case, cluster = CaseFactory(), ClusterFactory()
    add_run(case, cluster, False, now=timezone.now() - timedelta(seconds=20))
    run = running_run(case, cluster)
    cells = listener([push.cluster_group(cluster.pk)])
    reporter = subprocess.Popen(
        [sys.executable, "-c", REPORTER, str(run.pk), TOKEN, FAILED],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reporter.stdout is not None
        line = reporter.stdout.readline()  # blocks until the report is answered (or it died)
        # The report is committed and its pair sits in the hand-off, unpublished.
        assert line.strip() == f"stored failed [({case.pk}, {cluster.pk})]", reporter.stderr
        os.kill(reporter.pid, signal.SIGKILL)
        assert reporter.wait(timeout=10) == -signal.SIGKILL
    finally:
        if reporter.poll() is None:
            reporter.kill()
            reporter.wait()
    run.refresh_from_db()
    assert run.state == RunState.FAILED
    assert not Alert.objects.filter(case=case, cluster=cluster, latest_run=run).exists()

    # The sweep stays a settle time behind finished_at: not yet ...
    assert judging.finished_runs_judge(process=PROCESS) == 0
    assert not Alert.objects.filter(case=case, cluster=cluster, latest_run=run).exists()
    # ... and once that has passed, the pair is judged and pushed.
    assert run.finished_at is not None
    later = run.finished_at + timedelta(seconds=settings.KUBEPROBE_JUDGE_SETTLE_SECONDS + 1)
    assert judging.finished_runs_judge(process=PROCESS, now=later) == 2
    fires_once(case, cluster, run)
    wait_for(
        lambda: cells.cells(case_id=case.pk, run_id=run.pk, alert_state="firing"),
        timeout=10,
        what="the dashboard cell of the judged pair",
    )
    # Passing again judges nothing twice.
    assert judging.finished_runs_judge(process=PROCESS, now=later) == 0
    fires_once(case, cluster, run)


def test_a_report_the_broker_refused_is_still_judged(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused: list[list[tuple[int, int]]] = []

    def redis_down(pairs: list[tuple[int, int]]) -> None:
        refused.append(list(pairs))
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    def broker_down(*args: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(handoff, "pending_park", redis_down)
    monkeypatch.setattr(process_finished_runs, "delay", broker_down)
    settings.KUBEPROBE_JUDGE_SETTLE_SECONDS = 0
    case, cluster = CaseFactory(), ClusterFactory()
    add_run(case, cluster, False, now=timezone.now() - timedelta(minutes=1))
    run = running_run(case, cluster)
    assert run_report(run_id=run.pk, token=TOKEN, body=FAILED.encode()) == RunState.FAILED
    wait_for(lambda: any((case.pk, cluster.pk) in p for p in refused), timeout=10)
    assert not Alert.objects.filter(case=case, cluster=cluster, latest_run=run).exists()

    assert judging.finished_runs_judge(process=PROCESS) == 2
    fires_once(case, cluster, run)


def test_a_pair_judged_already_is_not_judged_again(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.KUBEPROBE_JUDGE_SETTLE_SECONDS = 0
    case, cluster = CaseFactory(), ClusterFactory()
    add_run(case, cluster, False, now=timezone.now() - timedelta(minutes=1))
    run = add_run(case, cluster, False)
    services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)  # the fast path did
    fires_once(case, cluster, run)
    # Judging it again without a new run changes nothing (no second flip) ...
    services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    fires_once(case, cluster, run)
    # ... and the sweep does not even try.
    judged: list[tuple[int, int]] = []
    real = pipeline.finished_batch_process

    def recording(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], Alert]:
        judged.extend(pairs)
        return real(pairs)

    monkeypatch.setattr(pipeline, "finished_batch_process", recording)
    assert judging.finished_runs_judge(process=PROCESS) == 2
    assert judged == []
    newer = add_run(case, cluster, True)
    assert judging.finished_runs_judge(process=PROCESS) == 1
    assert judged == [(case.pk, cluster.pk)]
    assert Alert.objects.get(case=case, cluster=cluster).latest_run_id == newer.pk


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[tuple[int, int]]:
    """Evaluation replaced by a recorder: what the sweep claims, with no alert to skip on."""
    settings.KUBEPROBE_JUDGE_SETTLE_SECONDS = 0
    judged: list[tuple[int, int]] = []
    # The pipeline takes a sweep's pairs as one batch: record them instead.
    monkeypatch.setattr(pipeline, "finished_batch_process", lambda pairs: judged.extend(pairs))
    return judged


def finished_runs(count: int, ago: float = 100) -> list[ProbeRun]:
    """`count` failed runs of their own pairs, finished from `ago` seconds back, two per second
    (ties on finished_at included)."""
    start = timezone.now() - timedelta(seconds=ago)
    return [
        add_run(CaseFactory(), ClusterFactory(), False, now=start + timedelta(seconds=i // 2))
        for i in range(count)
    ]


def test_two_sweepers_claim_each_finished_run_once(recorded: list[tuple[int, int]]) -> None:
    runs = finished_runs(40)
    last = max(runs, key=lambda r: (r.finished_at, r.pk))

    # A sweeper in the middle of a batch holds the watermark: the other gets nothing.
    inside, other_done = threading.Event(), threading.Event()
    first: list[int] = []

    def slow(pairs: list[tuple[int, int]]) -> None:
        recorded.extend(pairs)
        if not inside.is_set():
            inside.set()
            assert other_done.wait(timeout=10)

    def sweep_slowly() -> None:
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(pipeline, "finished_batch_process", slow)
                first.append(judging.finished_runs_judge(process=PROCESS, batch=10, max_batches=1))
        finally:
            connection.close()

    holder = threading.Thread(target=sweep_slowly)
    holder.start()
    assert inside.wait(timeout=10)
    assert judging.finished_runs_judge(process=PROCESS, batch=10) == 0
    other_done.set()
    holder.join(timeout=10)
    assert first == [10]

    # Two sweepers racing for the rest, in small batches.
    def at_end() -> bool:
        mark = JudgeWatermark.objects.get(name=judging.WATERMARK)
        return mark.run_id == last.pk

    def race() -> None:
        try:
            wait_for(
                lambda: (
                    judging.finished_runs_judge(process=PROCESS, batch=3, max_batches=1) == 0
                    and at_end()
                )
            )
        finally:
            connection.close()

    racers = [threading.Thread(target=race) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=30)
    counts = Counter(recorded)
    assert set(counts) == {(r.case_id, r.cluster_id) for r in runs}
    assert max(counts.values()) == 1


def test_a_pass_is_bounded_and_bulk(recorded: list[tuple[int, int]]) -> None:
    finished_runs(5)
    with CaptureQueriesContext(connection) as few:
        assert judging.finished_runs_judge(process=PROCESS, batch=100) == 5
    finished_runs(60, ago=80)
    with CaptureQueriesContext(connection) as many:
        assert judging.finished_runs_judge(process=PROCESS, batch=100) == 60
    # The same statements for 5 runs or 60: nothing per run.
    assert len(many.captured_queries) == len(few.captured_queries)
    assert len(recorded) == 65

    finished_runs(25, ago=40)
    assert judging.finished_runs_judge(process=PROCESS, batch=10, max_batches=2) == 20  # bounded
    assert judging.finished_runs_judge(process=PROCESS, batch=10, max_batches=2) == 5
    assert len(recorded) == 90


def test_the_sweep_reads_the_run_finished_index() -> None:
    finished_runs(3)
    mark = JudgeWatermark(name="explain", finished_at=judging.BEGINNING)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = judging.runs_after(mark, timezone.now())[:500].explain()
    assert "run_finished" in plan, plan
