"""Live updates: group names, the one typed-payload helper, and the pushes.

Every message that travels to a dashboard is built by ``payload()``: the
events sent to Channels groups (``live.cell``, ``live.run``; each maps to one
consumer method, paperless-ngx style) and the frames the consumer sends to the
browser (``cells``, ``run``, ``subscribed``, ``error``). Group names are built
here only, so they always match ``^[a-zA-Z0-9._-]+$`` and stay under 100
characters.

Pushes come from signal receivers in Celery workers (see receivers.py). A
push must never break its caller: a failure is logged and dropped, and the
browser heals on its next resync.

Re-judged pairs (``push_pair``/``push_pairs``, up to thousands a second from
the post-run pipeline) are coalesced per process: the first change after a
quiet spell goes out at once, later ones are buffered by (case, cluster),
last write winning, and sent every ``KUBEPROBE_LIVE_PUSH_WINDOW_SECONDS`` as
one ``live.cells`` event per group. So 1,000 changes a second reach each
page's consumer as a few events a second instead of a thousand. Those
batches and resident cells (``rcell``) share one ordered, non-blocking queue.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from channels.layers import get_channel_layer
from django.conf import settings

from apps.diagnosis.selectors import incidents_list

logger = logging.getLogger(__name__)

OVERVIEW_GROUP = "live.overview"
INCIDENTS_GROUP = "live.incidents"
SEND_TIMEOUT_SECONDS = 5.0
DEFAULT_PUSH_WINDOW_SECONDS = 0.1
# Queued pushes (resident samples) not sent yet per process before new ones are dropped.
MAX_PENDING_PUSHES = 200

# A page subscribes to one of these; "alerts" pages watch the same stream as the overview.
SCOPE_RE = re.compile(
    r"^(?:(?P<plain>overview|alerts|incidents)|(?P<kind>cluster|case|run|resident|incident):(?P<id>[0-9]{1,18}))$"
)

PayloadKind = Literal["cell", "run", "samples", "rcell", "incident", "cells", "subscribed", "error"]
# Group events carry "cells" too: a coalesced batch (type "live.cells").

# kind -> (required fields, optional fields). An optional field given as None is
# left out: a push that does not know it (the alert state of a run that is only
# dispatched) leaves it out, and the page keeps what it shows.
_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # group events (type "live.<kind>")
    "cell": (
        frozenset({"case_id", "cluster_id", "run_state", "run_id"}),
        frozenset({"alert_state", "severity"}),
    ),
    "run": (frozenset({"run_id", "state", "cluster_id"}), frozenset({"case_id"})),
    # a resident probe's batch: points are [t, count, failures, p50, p99] (both forms)
    "samples": (frozenset({"probe_id", "cluster_id", "points", "state"}), frozenset()),
    # a resident probe's cell of the overview matrix: the newest window's state (up/down)
    "rcell": (frozenset({"probe_id", "cluster_id", "state"}), frozenset()),
    # an incident opened, changed members, was labelled or resolved (apps/diagnosis)
    "incident": (frozenset({"incident_id", "state", "title", "members"}), frozenset()),
    # browser frames (type "<kind>")
    "cells": (frozenset({"cells"}), frozenset()),
    "subscribed": (frozenset({"scope"}), frozenset()),
    "error": (frozenset({"detail"}), frozenset({"scope"})),
}
_GROUP_EVENTS = frozenset({"cell", "run", "samples", "rcell", "incident"})
CELLS_EVENT = "live.cells"
_BROWSER_RUN_FIELDS = ("run_id", "state")


def payload(kind: PayloadKind, /, for_browser: bool = False, **fields: Any) -> dict[str, Any]:
    """Build one typed message; the only place any live message is made.

    Group events get ``type: live.<kind>`` (the consumer method ``live_<kind>``
    handles it); browser frames get ``type: <kind>``. ``run`` exists in both
    forms: ``for_browser=True`` keeps only run_id and state.
    """
    if kind not in _FIELDS:
        raise ValueError(f"unknown live message kind {kind!r}")
    required, optional = _FIELDS[kind]
    data = {k: v for k, v in fields.items() if v is not None or k in required}
    missing = required - data.keys()
    unknown = data.keys() - required - optional
    if missing or unknown:
        raise ValueError(f"{kind}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    if kind == "samples" and for_browser:
        return {"type": "samples", **data}
    if kind == "run" and for_browser:
        return {"type": "run", **{k: data[k] for k in _BROWSER_RUN_FIELDS}}
    if kind in _GROUP_EVENTS and not for_browser:
        return {"type": f"live.{kind}", **data}
    return {"type": kind, **data}


# ------------------------------------------------------------------ groups


def cluster_group(cluster_id: int) -> str:
    return f"live.cluster.{int(cluster_id)}"


def case_group(case_id: int) -> str:
    return f"live.case.{int(case_id)}"


def run_group(run_id: int) -> str:
    return f"live.run.{int(run_id)}"


def resident_group(probe_id: int) -> str:
    return f"live.resident.{int(probe_id)}"


def parse_scope(scope: object) -> tuple[str, int | None] | None:
    """``"cluster:3"`` -> ``("cluster", 3)``, ``"overview"`` -> ``("overview", None)``; else None."""
    if not isinstance(scope, str):
        return None
    match = SCOPE_RE.match(scope)
    if match is None:
        return None
    if match["plain"]:
        return match["plain"], None
    return match["kind"], int(match["id"])


def scope_group(kind: str, object_id: int | None) -> str:
    if kind in ("overview", "alerts"):
        return OVERVIEW_GROUP
    if kind in ("incidents", "incident"):
        return INCIDENTS_GROUP
    groups = {
        "cluster": cluster_group,
        "case": case_group,
        "run": run_group,
        "resident": resident_group,
    }
    return groups[kind](object_id or 0)


def cell_groups(*, case_id: int, cluster_id: int) -> list[str]:
    return [OVERVIEW_GROUP, cluster_group(cluster_id), case_group(case_id)]


# ------------------------------------------------------------------ pushes


# Sends in flight at once: each holds one of the layer's pooled Redis connections (100
# per process by default), and a batch of the post-run pipeline (hundreds of cells)
# sent all at once exhausted the pool.
MAX_CONCURRENT_SENDS = 64


async def _send_all(messages: Iterable[tuple[str, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    gate = asyncio.Semaphore(MAX_CONCURRENT_SENDS)

    async def send(group: str, message: dict[str, Any]) -> None:
        async with gate:
            await layer.group_send(group, message)

    await asyncio.gather(*(send(group, message) for group, message in messages))


Messages = list[tuple[str, dict[str, Any]]]


class _PushLoop:
    """One event loop thread per process that sends every push.

    async_to_sync from a worker thread would start a new loop per call, and
    the Redis layer keeps its connections per loop: every push would open
    fresh connections (~10 ms here, more to a remote Redis over TLS). A
    long-lived loop keeps them. Started lazily and again after a fork
    (Celery's prefork children).

    Pushes that must not hold their caller (resident samples, the pair
    batches) go through one queue drained by one task, in order: a cell's
    "up" never overtakes its later "down", whichever kind carried it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self._pending = 0  # send_nowait's messages not sent yet
        self._queue: asyncio.Queue[tuple[Messages, Callable[[], None] | None]] | None = None
        self._drainer: asyncio.Task[None] | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._pending, self._queue = 0, None
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="kubeprobe-live-push", daemon=True
                ).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def send_nowait(self, messages: Messages) -> None:
        """Queue the messages and return at once; while MAX_PENDING_PUSHES are unsent,
        new ones are dropped and logged, so a stuck Redis piles nothing up."""
        loop = self.loop()  # first: a new loop (after a fork) resets the count
        with self._lock:
            if self._pending >= MAX_PENDING_PUSHES:
                logger.warning("live push to %s dropped: Redis is behind", [g for g, _ in messages])
                return
            self._pending += 1
        loop.call_soon_threadsafe(self.enqueue, messages)

    def enqueue(self, messages: Messages, done: Callable[[], None] | None = None) -> None:
        """In the loop: queue messages behind those already queued; `done` runs once
        they are sent (or failed). The pair batcher calls this directly: it sends at
        most one batch per window, so it is bounded by construction."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            # Held here: the loop keeps only a weak reference to its tasks.
            self._drainer = asyncio.get_running_loop().create_task(self._drain(self._queue))
        self._queue.put_nowait((messages, done))

    async def _drain(
        self, queue: asyncio.Queue[tuple[Messages, Callable[[], None] | None]]
    ) -> None:
        while True:
            messages, done = await queue.get()
            try:
                await asyncio.wait_for(_send_all(messages), SEND_TIMEOUT_SECONDS)
            except Exception:  # a push never breaks anything; pages heal on resync
                groups = sorted({g for g, _ in messages})
                logger.warning("live push to %s failed", groups[:5], exc_info=True)
            finally:
                if done is None:
                    with self._lock:
                        self._pending -= 1
                else:
                    done()

    def send(self, messages: Messages) -> None:
        future = asyncio.run_coroutine_threadsafe(_send_all(messages), self.loop())
        try:
            # Wait, so a worker never piles up unsent pushes; bounded, so a
            # stuck Redis cannot hold the worker.
            future.result(timeout=SEND_TIMEOUT_SECONDS)
        except BaseException:
            future.cancel()
            raise


_push_loop = _PushLoop()


def _send(messages: Messages) -> None:
    try:
        _push_loop.send(messages)
    except Exception:  # a push never breaks the worker; pages heal on resync
        groups = sorted({g for g, _ in messages})
        logger.warning(
            "live push to %d groups (%s…) failed", len(groups), groups[:5], exc_info=True
        )


def _window() -> float:
    return float(
        getattr(settings, "KUBEPROBE_LIVE_PUSH_WINDOW_SECONDS", DEFAULT_PUSH_WINDOW_SECONDS)
    )


def _batch_messages(cells: Iterable[dict[str, Any]], runs: Iterable[dict[str, Any]]) -> Messages:
    """One ``live.cells`` event per group that shows any of `cells`, plus each run's event."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        for group in cell_groups(case_id=cell["case_id"], cluster_id=cell["cluster_id"]):
            by_group.setdefault(group, []).append(cell)
    messages = [(group, {"type": CELLS_EVENT, "cells": batch}) for group, batch in by_group.items()]
    messages += [(run_group(run["run_id"]), run) for run in runs]
    return messages


Pending = tuple[dict[str, Any], dict[str, Any] | None]  # a cell and its run event


class _PairBatcher:
    """Buffers re-judged pairs and queues them as batches, at most one per window.

    Callers only take a lock and update a dict; the batch joins the push loop's
    ordered queue (see `_PushLoop`). A burst costs one send per window whatever
    its size, and an isolated change waits for nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[tuple[int, int], dict[str, Any]] = {}
        self._runs: dict[int, dict[str, Any]] = {}
        self._scheduled = False
        self._in_flight = 0  # batches queued, not sent yet
        self._last_flush = 0.0
        self._idle = threading.Event()
        self._idle.set()
        self._pid = os.getpid()

    def add(self, pending: Iterable[Pending]) -> None:
        if self._pid != os.getpid():  # forked (Celery prefork): the parent's buffer is not ours
            self.__init__()  # type: ignore[misc]
        with self._lock:
            for cell, run in pending:
                key = (cell["case_id"], cell["cluster_id"])
                earlier = self._cells.get(key)
                self._cells[key] = {**earlier, **cell} if earlier else cell
                if run is not None:
                    self._runs[run["run_id"]] = run
            if self._scheduled or not self._cells:
                return
            self._scheduled = True
            self._idle.clear()
            delay = max(0.0, self._last_flush + _window() - time.monotonic())
        loop = _push_loop.loop()
        loop.call_soon_threadsafe(loop.call_later, delay, self._flush)

    def _flush(self) -> None:  # in the loop
        with self._lock:
            cells, runs = list(self._cells.values()), list(self._runs.values())
            self._cells, self._runs = {}, {}
            self._scheduled = False
            self._last_flush = time.monotonic()
            self._in_flight += 1
        _push_loop.enqueue(_batch_messages(cells, runs), self._sent)

    def _sent(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if not self._scheduled and not self._in_flight:
                self._idle.set()

    def wait_idle(self, timeout: float = SEND_TIMEOUT_SECONDS) -> bool:
        """Block until everything buffered was sent (tests, process exit)."""
        return self._idle.wait(timeout)


_pairs = _PairBatcher()
atexit.register(_pairs.wait_idle)


def flush_pairs(timeout: float = SEND_TIMEOUT_SECONDS) -> bool:
    """Wait until the pairs pushed so far have left this process; False on timeout."""
    return _pairs.wait_idle(timeout)


def _pair_pending(
    *,
    case_id: int,
    cluster_id: int,
    state: str,
    severity: str,
    latest_state: str | None,
    latest_run_id: int | None,
) -> Pending:
    cell = payload(
        "cell",
        case_id=case_id,
        cluster_id=cluster_id,
        run_state=str(latest_state or "none"),
        alert_state=str(state),
        severity=str(severity),
        run_id=latest_run_id,
    )
    cell.pop("type")
    if not (latest_run_id and latest_state):
        return cell, None
    run = payload(
        "run", run_id=latest_run_id, state=str(latest_state), cluster_id=cluster_id, case_id=case_id
    )
    return cell, run


def push_pair(
    *,
    case_id: int,
    cluster_id: int,
    state: str,
    severity: str,
    latest_state: str | None,
    latest_run_id: int | None,
) -> None:
    """A (case, cluster) pair was re-judged: its cell to every page showing it, and its run.

    Buffered and sent with the other pairs of its window (see `_PairBatcher`)."""
    cell = dict(case_id=case_id, cluster_id=cluster_id, state=state, severity=severity)
    push_pairs([{**cell, "latest_state": latest_state, "latest_run_id": latest_run_id}])


def push_pairs(cells: list[dict[str, Any]]) -> None:
    """Many pairs re-judged together (the post-run pipeline's batch): buffered under one
    lock and sent with the window's batch. Each cell has push_pair's arguments."""
    try:
        _pairs.add([_pair_pending(**cell) for cell in cells])
    except Exception:  # a push never breaks the worker; pages heal on resync
        logger.warning("live push of %d pairs failed", len(cells), exc_info=True)


def _run_state_messages(*, run_id: int, case_id: int, cluster_id: int, state: str) -> Messages:
    cell = payload("cell", case_id=case_id, cluster_id=cluster_id, run_state=state, run_id=run_id)
    messages = [(group, cell) for group in cell_groups(case_id=case_id, cluster_id=cluster_id)]
    messages.append(
        (
            run_group(run_id),
            payload("run", run_id=run_id, state=state, cluster_id=cluster_id, case_id=case_id),
        )
    )
    return messages


def push_run_state(*, run_id: int, case_id: int, cluster_id: int, state: str) -> None:
    """A run was dispatched or started: its cell (alert state unchanged) and its run page."""
    _send(_run_state_messages(run_id=run_id, case_id=case_id, cluster_id=cluster_id, state=state))


def push_run_states(*, runs: list[tuple[int, int, int]], state: str) -> None:
    """Many runs (run_id, case_id, cluster_id) reached `state` together: one round of sends."""
    _send(
        [
            message
            for run_id, case_id, cluster_id in runs
            for message in _run_state_messages(
                run_id=run_id, case_id=case_id, cluster_id=cluster_id, state=state
            )
        ]
    )


# What this process last told overview pages of each resident cell, and when: a batch
# per second per cell must not reach every overview page, only a change of state, or
# the first batch after a quiet minute (a stale grey cell turns live again at once).
_overview_told: dict[tuple[int, int], tuple[str, float]] = {}
OVERVIEW_RETELL_SECONDS = 60.0


def push_samples(*, probe_id: int, cluster_id: int, points: list[list[Any]], state: str) -> None:
    """A resident probe's batch was stored: its points to the probe's page, and its cell's
    state to the overview when that may have changed."""
    message = payload(
        "samples", probe_id=probe_id, cluster_id=cluster_id, points=points, state=state
    )
    messages = [(resident_group(probe_id), message)]
    key, now = (probe_id, cluster_id), time.monotonic()
    told = _overview_told.get(key)
    if told is None or told[0] != state or now - told[1] > OVERVIEW_RETELL_SECONDS:
        if len(_overview_told) > 100_000:
            _overview_told.clear()
        _overview_told[key] = (state, now)
        cell = payload("rcell", probe_id=probe_id, cluster_id=cluster_id, state=state)
        messages.append((OVERVIEW_GROUP, cell))
    # Not waited for: this runs in the ingestion request, whose answer must not wait
    # for Redis (three thread hops and a round trip, the most of a batch's latency
    # after its one statement on a busy machine).
    try:
        _push_loop.send_nowait(messages)
    except Exception:  # a push never breaks ingestion; pages heal on resync
        logger.warning("live push of resident samples failed", exc_info=True)


def push_incidents(incident_ids: list[int]) -> None:
    """Incidents changed: their state to the incidents list and each one's page."""
    messages = [
        (
            INCIDENTS_GROUP,
            payload(
                "incident",
                incident_id=i.pk,
                state=i.state,
                title=i.title,
                members=getattr(i, "member_count", 0),
            ),
        )
        for i in incidents_list().filter(pk__in=incident_ids)
    ]
    if messages:
        # Queued behind the cells already queued, not waited for: the pipeline's
        # batch must not wait for Redis (the pages refetch, so order is all that counts).
        try:
            _push_loop.send_nowait(messages)
        except Exception:  # a push never breaks the worker; pages heal on resync
            logger.warning("live push of %d incidents failed", len(messages), exc_info=True)
