"""Scale-out: two of every process on one Postgres and Redis, and one worker killed.

Two gunicorn processes behind a round-robin load balancer take the reports,
two daphne servers each serve two overview dashboards (websocket clients), two
Celery workers consume each queue (ticks, dispatch, alerts, housekeeping with
the default queue) and one beat ticks two bindings every few seconds: cases on
three `local` clusters that pass, fail and pass-and-fail in turn (every run of
those changes its alert), under a rule that fires on one failure and resolves
on one success, with a webhook channel pointing at a receiver in the test.
Midway the test sends each binding's tick again (a redelivered message, a
second beat) and SIGKILLs one dispatch and one alerts worker with all their
children, as a dying host would be. Then, after the bindings stop:

- each (binding, case, cluster, tick) has one run at most, ticks stay half a
  period apart, and each tick stored or counted every pair as skipped;
- every run ended and every pair was judged on its newest run;
- each pair's flips alternate, each at a run that changed its outcome, in
  order, none twice, and no pipeline step failed; the receiver got each flip once;
- reports went through both web processes, and each dashboard, on either
  websocket server, saw every alert change and shows each pair as stored.
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from apps.alerts import channels
from apps.alerts.messages import fingerprint
from apps.alerts.models import Alert, AlertFlip, AlertRule, Notification, NotificationStatus
from apps.catalog.models import Case, CaseTemplate, RenderConfig
from apps.clusters.models import Cluster, Executor
from apps.runs.models import ACTIVE_STATES, ProbeRun, RunState
from apps.scheduling.models import Binding
from kubeprobe_site.celery import app as celery_app
from kubeprobe_site.queues import queue_name
from tests.alerts.transports.helpers import Receiver
from tests.postrun import stack
from tests.runs.test_loop import database_url
from tests.utils import wait_for

# About two minutes on a quiet 2-core machine; starting thirteen processes takes
# minutes more when other test runs share the cores.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

PERIOD = 4  # seconds between a binding's ticks
TICKS_BEFORE_KILL, TICKS_IN_ALL = 3, 6
# Thirteen Django processes start together: a few seconds on a quiet machine, minutes on
# a machine busy with other test runs.
START = 240
WORKER_KINDS = ("ticks", "dispatch", "alerts", "housekeeping")
REPORT_LINE = re.compile(r'"POST /api/v1/runs/\d+/report ')
# The reaper's reasons for a run whose probe process died with its worker.
PROBE_LOST = re.compile(r"no report within|the process vanished|no process was started")


def local_case(name: str, module: str, env: dict[str, str] | None = None) -> Case:
    template = CaseTemplate.objects.create(
        name=name, image="local", command=["python", "-m", module], timeout_seconds=8
    )
    case = Case.objects.create(name=name, template=template)
    if env:
        RenderConfig.objects.create(case=case, name=name, env=env)
    return case


def binding(name: str, clusters: list[Cluster], cases: list[Case]) -> Binding:
    made = Binding.objects.create(name=name, interval_seconds=PERIOD)
    made.clusters.set(clusters)
    made.cases.set(cases)
    return made


def viewer_cookie() -> str:
    user = User.objects.create_user("wall", password="pw-For-tests-1", is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    # The viewer role's own permission, directly too: after an earlier transactional
    # test's flush the role may be re-created before this permission exists again,
    # and a page that may see no cluster is sent no cell.
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="clusters", codename="view_cluster")
    )
    client = Client()
    client.force_login(user)
    return str(client.cookies["sessionid"].value)


def tick_of(run: ProbeRun) -> str:
    # schedule:<binding>:<tick time>:<case>:<cluster>
    return str(run.idempotency_key).rsplit(":", 2)[0]


def expected_flips(runs: list[ProbeRun]) -> list[tuple[int, str]]:
    """The alert changes a pair's finished runs make under fire-on-one, resolve-on-one."""
    changes, failing = [], False
    for run in runs:
        if (run.state != RunState.SUCCEEDED) != failing:
            failing = not failing
            changes.append((run.pk, "firing" if failing else "resolved"))
    return changes


def describe(runs: list[ProbeRun]) -> str:
    """What a failure needs to be diagnosed: each run's story, one line each."""
    return "\n".join(
        f"run {r.pk} {r.state} key={r.idempotency_key} created={r.created_at:%H:%M:%S.%f} "
        f"dispatched={r.dispatched_at and f'{r.dispatched_at:%H:%M:%S.%f}'} "
        f"finished={r.finished_at and f'{r.finished_at:%H:%M:%S.%f}'} reason={r.reason!r}"
        for r in runs
    )


def is_subsequence(items: list[Any], sequence: list[Any]) -> bool:
    rest = iter(sequence)
    return all(item in rest for item in items)


def settle(
    condition: Callable[[], bool], what: str, detail: Callable[[], str], timeout: float = 30
) -> None:
    """wait_for, and when it times out, say what differs."""
    try:
        wait_for(condition, timeout, 0.2, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {detail()}") from None


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def test_two_of_every_process_share_the_work_without_losing_or_doubling_any(
    receiver: Receiver, settings: Any
) -> None:
    clusters = [Cluster.objects.create(name=f"c{i}", executor=Executor.LOCAL) for i in range(3)]
    state_dir = Path(tempfile.mkdtemp(prefix="kubeprobe-scale-flip-"))
    steady = local_case("steady", "tests.runs.cases.passing")
    flip = local_case("flip", "tests.postrun.cases.flip", {"FLIP_STATE_DIR": str(state_dir)})
    broken = local_case("broken", "tests.runs.cases.failing")
    bindings = [
        binding("spread", clusters, [steady, flip]),
        binding("broken", clusters[:2], [broken]),
    ]
    AlertRule.objects.filter(name="default").update(
        consecutive_failures=1,
        resolve_after_successes=1,
        flap_threshold=1000,
        success_rate_below=None,
        step_latency_ms=None,
        stale_factor=None,
        escalate_after_minutes=None,
    )
    channels.channel_save(name="hook", kind="webhook", config={"url": receiver.url()})
    cookie = viewer_cookie()

    logs = Path(tempfile.mkdtemp(prefix="kubeprobe-scale-out-"))
    queue = celery_app.conf.task_default_queue
    # Cache keys and alert fingerprints of this test's installation, here as in its processes.
    settings.KUBEPROBE_INSTALLATION = queue
    web, ws = [stack.free_port(), stack.free_port()], [stack.free_port(), stack.free_port()]
    balancer = stack.RoundRobin(web)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DATABASE_CONN_MAX_AGE": "60",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "KUBEPROBE_INSTALLATION": queue,
        "KUBEPROBE_PUBLIC_URL": f"http://127.0.0.1:{balancer.port}",
        "KUBEPROBE_LOCAL_EXECUTOR_ENABLED": "true",
        "KUBEPROBE_LOCAL_RUN_DIR": str(logs / "runs"),
        # Short clocks, so that what the killed workers held comes back within the test.
        "KUBEPROBE_REPORT_GRACE_SECONDS": "1",
        "KUBEPROBE_REAP_INTERVAL_SECONDS": "1",
        "KUBEPROBE_REDISPATCH_MIN_SECONDS": "3",
        "KUBEPROBE_JUDGE_SWEEP_SECONDS": "1",
        "KUBEPROBE_JUDGE_SETTLE_SECONDS": "2",
        "KUBEPROBE_ALERT_GROUP_WAIT_SECONDS": "0.3",
        "KUBEPROBE_ALERT_HOUSEKEEPING_SECONDS": "2",
        "KUBEPROBE_NOTIFY_LEASE_SECONDS": "10",
    }
    procs = stack.Processes(env, logs)
    dashboards: stack.Dashboards | None = None
    try:
        for i in range(2):
            procs.start(f"web{i}", stack.gunicorn(web[i], logs / f"access{i}.log"))
            procs.start(f"ws{i}", stack.daphne(ws[i]))
            for kind in WORKER_KINDS:
                queues = [queue_name(queue, kind)] + ([queue] if kind == "housekeeping" else [])
                procs.start(f"{kind}{i}", stack.worker(queues, f"{kind}{i}"))
        for port in web + ws:
            wait_for(lambda p=port: http_ok(f"http://127.0.0.1:{p}/livez"), START, 0.2, f":{port}")
        for i in range(2):
            for name in (f"{kind}{i}" for kind in WORKER_KINDS):
                wait_for(lambda n=name: " ready." in procs.log(n), START, 0.2, name)
        # Two pages on each websocket server, subscribed before the first tick.
        dashboards = stack.Dashboards([ws[0], ws[0], ws[1], ws[1]], cookie)
        wait_for(lambda: all(e.is_set() for e in dashboards.subscribed), 30, what="subscribed")
        procs.start("beat", stack.beat(logs))

        def ticks(name: str) -> int:
            keys = ProbeRun.objects.filter(binding__name=name).values_list("idempotency_key")
            return len({k.rsplit(":", 2)[0] for (k,) in keys})

        wait_for(lambda: ticks("spread") >= TICKS_BEFORE_KILL, START, 0.2, "the first ticks")
        # The tick again (a redelivered message, a second beat): claimed at most once.
        for made in bindings:
            for _ in range(2):
                celery_app.send_task(
                    "apps.scheduling.tasks.fire_binding", kwargs={"binding_id": made.pk}
                )
        # Runs the killed dispatch worker may hold: active just before the kill, or
        # launched and not finished just after (its probe processes die with it).
        held = set(ProbeRun.objects.filter(state__in=ACTIVE_STATES).values_list("pk", flat=True))
        killed = procs.kill_tree("dispatch0") + procs.kill_tree("alerts0")
        launched = (RunState.DISPATCHED, RunState.RUNNING)
        held |= set(ProbeRun.objects.filter(state__in=launched).values_list("pk", flat=True))
        assert len(killed) >= 4  # each worker's main process and its pool child
        wait_for(lambda: ticks("spread") >= TICKS_IN_ALL, START, 0.2, "the later ticks")
        for made in bindings:
            made.enabled = False
            made.save()  # its beat entry is disabled with it

        # Drain: every run ends, every pair is judged, every flip is delivered.
        settle(
            lambda: not ProbeRun.objects.filter(state__in=ACTIVE_STATES).exists(),
            "every run to end",
            lambda: describe(list(ProbeRun.objects.filter(state__in=ACTIVE_STATES))),
            60,
        )

        def judged() -> bool:
            newest = {}
            for run in ProbeRun.objects.order_by("pk"):
                newest[(run.case_id, run.cluster_id)] = run.pk
            alerts = {(a.case_id, a.cluster_id): a.latest_run_id for a in Alert.objects.all()}
            return newest == alerts

        wait_for(judged, 30, 0.2, "every pair judged on its newest run")
        wait_for(
            lambda: (
                not AlertFlip.objects.filter(processed_at=None).exists()
                and not Notification.objects.exclude(status=NotificationStatus.SENT).exists()
            ),
            30,
            0.2,
            "every flip delivered",
        )
        flips = list(
            AlertFlip.objects.select_related("alert__case", "alert__cluster").order_by(
                "created_at", "pk"
            )
        )

        # Items name their alert by fingerprint: an incident's message lists several cases.
        by_print = {
            fingerprint(a.case_id, a.cluster_id): (a.case.name, a.cluster.name)
            for a in Alert.objects.select_related("case", "cluster")
        }

        def delivered() -> Counter[tuple[str, str, str]]:
            got: Counter[tuple[str, str, str]] = Counter()
            for request in list(receiver.requests):
                body = request.json()
                for item in body["items"]:
                    got[(*by_print[item["fingerprint"]], body["event"])] += 1
            return got

        wanted = Counter((f.alert.case.name, f.alert.cluster.name, f.event) for f in flips)
        settle(
            lambda: delivered() == wanted,
            "the receiver to get every flip once",
            lambda: f"flips {wanted}, received {delivered()}",
        )

        runs = list(ProbeRun.objects.select_related("binding").order_by("pk"))
        alerts = {(a.case_id, a.cluster_id): a for a in Alert.objects.all()}

        def pages_agree() -> list[str]:
            """What differs between each page, replaying its cells as the page does (the
            last write wins field by field), and the database: each pair's newest run,
            its state and the alert's, and every alert change in order."""
            wrong = []
            for index, cells in enumerate(dashboards.cells):
                shown: dict[tuple[int, int], dict[str, Any]] = defaultdict(dict)
                states: dict[tuple[int, int], list[str]] = defaultdict(list)
                for cell in list(cells):
                    pair = (cell["case_id"], cell["cluster_id"])
                    shown[pair].update(cell)
                    if cell.get("alert_state") and cell["alert_state"] not in states[pair][-1:]:
                        states[pair].append(cell["alert_state"])
                for pair, alert in alerts.items():
                    view = shown[pair]
                    want = (alert.latest_run_id, alert.latest_state, alert.state)
                    got = (view.get("run_id"), view.get("run_state"), view.get("alert_state"))
                    changes = [f.new_state for f in flips if f.alert_id == alert.pk]
                    if got != want or not is_subsequence(changes, states[pair]):
                        wrong.append(
                            f"page {index} {pair}: {got} {states[pair]}, not {want} {changes}"
                        )
            return wrong

        settle(
            lambda: not pages_agree(),
            "every dashboard to show every alert change and the final state",
            lambda: "; ".join(pages_agree()),
        )
    finally:
        if dashboards is not None:
            dashboards.close()
        procs.stop()
        balancer.close()
        celery_app.control.purge()

    # One run at most per (binding, case, cluster, tick); ticks half a period apart at
    # least (the duplicate sends claimed nothing); each tick stored or counted every pair.
    by_tick: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for run in runs:
        assert run.trigger == "schedule" and run.binding is not None
        by_tick[(run.binding.name, tick_of(run))].append((run.case_id, run.cluster_id))
    for (name, _), pairs in by_tick.items():
        assert len(pairs) == len(set(pairs)), (name, pairs)
    for made in bindings:
        made.refresh_from_db()
        times = sorted(
            datetime.fromisoformat(tick.split(":", 2)[2])
            for name, tick in by_tick
            if name == made.name
        )
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert min(gaps) >= PERIOD / 2, (made.name, gaps)
        pairs = made.cases.count() * made.clusters.count()
        stored = sum(len(p) for (name, _), p in by_tick.items() if name == made.name)
        # A tick that found every pair still active stored nothing, so it is not among
        # `times`, yet its skips count: whole ticks over, never a pair lost or doubled.
        extra = stored + made.skipped_count - len(times) * pairs
        print(f"SCALE-OUT {made.name}: {extra // pairs} ticks skipped every pair")
        assert extra >= 0 and extra % pairs == 0, (
            f"{made.name}: {stored} stored + {made.skipped_count} skipped over {len(times)} "
            f"ticks of {pairs} pairs, last fired {made.last_fired_at}, open {made.tick_open_at}\n"
            + describe([r for r in runs if r.binding.name == made.name])
        )

    # Every run ended.
    assert {r.state for r in runs} <= {"succeeded", "failed", "error", "timed_out"}
    # Each case ended as it always does, but where the killed dispatch worker held the
    # run: its probe died with it, and the reaper closed the run as an error or timed
    # out, saying so. (How many runs a case has depends on load: a pair still active at
    # a tick is skipped; the first tick, long before the kill, stored all three.)
    ends = {broken.pk: {"failed"}, steady.pk: {"succeeded"}, flip.pk: {"succeeded", "failed"}}
    lost = [r for r in runs if r.state not in ends[r.case_id]]
    assert all(
        r.pk in held
        and r.state in (RunState.ERROR, RunState.TIMED_OUT)
        and PROBE_LOST.search(r.reason)
        for r in lost
    ), f"held by the killed worker: {sorted(held)}\n" + describe(lost)
    passed = sum(r.state == RunState.SUCCEEDED for r in runs if r.case_id == steady.pk)
    print(f"SCALE-OUT: {passed} steady runs passed, {len(lost)} runs lost with the killed worker")
    assert passed >= len(clusters)

    # Each pair's flips alternate, in run order, each at a run whose outcome is its event,
    # and leave the alert as the newest run says: no change flipped twice, none made up.
    # (When judging falls a period behind, as on a busy machine, a pair is judged on a
    # newer run of the same outcome, or a short-lived change is never seen; on a quiet
    # machine every change flips: the count printed.)
    per_pair: dict[tuple[int, int], list[ProbeRun]] = defaultdict(list)
    for run in runs:
        per_pair[(run.case_id, run.cluster_id)].append(run)
    outcome = {r.pk: "resolved" if r.state == RunState.SUCCEEDED else "firing" for r in runs}
    flipped = expected = 0
    for pair, pair_runs in per_pair.items():
        got = [(f.run_id, f.event) for f in flips if (f.alert.case_id, f.alert.cluster_id) == pair]
        events = [event for _, event in got]
        assert events == ["firing", "resolved"] * (len(got) // 2) + ["firing"] * (len(got) % 2)
        assert all(outcome[run_id] == event for run_id, event in got), (pair, got)
        assert [r for r, _ in got] == sorted({r for r, _ in got}), (pair, got)
        newest_failed = pair_runs[-1].state != RunState.SUCCEEDED
        assert (alerts[pair].state == "firing") == newest_failed, (pair, alerts[pair].state)
        flipped, expected = flipped + len(got), expected + len(expected_flips(pair_runs))
        if pair[0] == broken.pk:
            assert events == ["firing"], (pair, got)
    print(f"{flipped} flips of {expected} changes of outcome")
    assert flipped >= 4
    assert all(f.notify for f in flips)
    assert sum(wanted.values()) == len(flips)

    # No step of the post-run pipeline failed in any worker (a deadlock between two
    # alerts workers did, before incidents_recover locked in a fixed order).
    for name in ("alerts0", "alerts1"):
        assert "post-run:" not in procs.log(name), procs.log(name)[-3000:]

    # Reports reached both web processes through the balancer.
    reports = [len(REPORT_LINE.findall((logs / f"access{i}.log").read_text())) for i in range(2)]
    answered = sum(r.state in (RunState.SUCCEEDED, RunState.FAILED) for r in runs)
    assert min(reports) > 0 and sum(reports) >= answered, (reports, answered)
    assert dashboards is not None and not dashboards.errors, dashboards.errors
