"""The live websocket over the real Redis channel layer, through the real ASGI stack
(origin check, session auth, routing), with Channels' communicator."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, User
from django.test import Client

from apps.alerts.models import Alert
from apps.alerts.signals import pair_changed
from apps.dashboard import consumers, push
from apps.runs.models import ProbeRun
from apps.runs.signals import run_state_changed
from tests.factories import CaseFactory, ClusterFactory, ClusterGroupFactory, ProbeRunFactory

FLUSH = 0.25
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def live_layer(settings: Any) -> None:
    """The real Redis layer, under a prefix of this pytest process: parallel runs never meet."""
    layer = settings.CHANNEL_LAYERS["default"]
    assert layer["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    settings.CHANNEL_LAYERS = {
        "default": {**layer, "CONFIG": {**layer["CONFIG"], "prefix": f"kp-test-{os.getpid()}:"}}
    }
    settings.KUBEPROBE_LIVE_FLUSH_SECONDS = FLUSH


def run_async(scenario: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(scenario)()


async def connect(user: User | None) -> WebsocketCommunicator:
    from kubeprobe_site.asgi import application

    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if user is not None:

        def login() -> str:
            client = Client()
            client.force_login(user)
            return client.cookies["sessionid"].value

        session = await database_sync_to_async(login)()
        headers.append((b"cookie", f"sessionid={session}".encode()))
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def subscribe(communicator: WebsocketCommunicator, scope: str) -> dict[str, Any]:
    await communicator.send_json_to({"type": "subscribe", "scope": scope})
    answer: dict[str, Any] = await communicator.receive_json_from(timeout=2)
    return answer


async def drain(communicator: WebsocketCommunicator, quiet: float = 1.0) -> list[dict[str, Any]]:
    """Every frame until none arrives for `quiet` seconds."""
    frames = []
    while not await communicator.receive_nothing(timeout=quiet, interval=0.01):
        frames.append(await communicator.receive_json_from())
    return frames


def send_pair_changed(alert: Alert) -> None:
    """As apps.alerts.services._announce does, once its transaction committed."""
    results = pair_changed.send_robust(
        sender=Alert,
        alert_id=alert.pk,
        case_id=alert.case_id,
        cluster_id=alert.cluster_id,
        state=alert.state,
        severity=alert.severity,
        latest_state=alert.latest_state,
        latest_run_id=alert.latest_run_id,
    )
    for _receiver, result in results:
        assert not isinstance(result, Exception), result


def make_alert(state: str = "firing", severity: str = "critical", **kw: Any) -> Alert:
    run = ProbeRunFactory(state="failed", ok=False, **kw)
    return Alert.objects.create(
        case=run.case,
        cluster=run.cluster,
        state=state,
        severity=severity,
        latest_state="failed",
        latest_run=run,
    )


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("root", password="pw-For-tests-1")


@pytest.fixture
def limited(db: None) -> tuple[User, int, int]:
    """A user whose auth group may view one cluster group (cluster A), not cluster B."""
    cluster_a, cluster_b = ClusterFactory(name="a"), ClusterFactory(name="b")
    team = Group.objects.create(name="team-a")
    user = User.objects.create_user("alice", password="pw-For-tests-1")
    user.groups.add(team)
    group_a = ClusterGroupFactory(name="group-a")
    group_a.members.add(cluster_a)
    group_a.viewer_groups.add(team)  # the pages' access rule, as the consumer applies it
    return user, cluster_a.pk, cluster_b.pk


# ------------------------------------------------------------------ tests


def test_anonymous_is_closed() -> None:
    async def scenario() -> None:
        communicator = await connect(None)
        assert await communicator.receive_output(timeout=2) == {
            "type": "websocket.close",
            "code": consumers.CLOSE_UNAUTHENTICATED,
        }
        await communicator.disconnect()

    run_async(scenario)


def test_pair_changed_reaches_the_overview_within_the_flush_interval(superuser: User) -> None:
    alert = make_alert()

    async def scenario() -> None:
        communicator = await connect(superuser)
        assert await subscribe(communicator, "overview") == {
            "type": "subscribed",
            "scope": "overview",
        }
        started = time.monotonic()
        await sync_to_async(send_pair_changed)(alert)
        frame = await communicator.receive_json_from(timeout=2)
        assert time.monotonic() - started < FLUSH + 0.5
        assert frame == {
            "type": "cells",
            "cells": [
                {
                    "case_id": alert.case_id,
                    "cluster_id": alert.cluster_id,
                    "run_state": "failed",
                    "alert_state": "firing",
                    "severity": "critical",
                    "run_id": alert.latest_run_id,
                }
            ],
        }
        await communicator.disconnect()

    run_async(scenario)


def test_cluster_and_case_scopes_get_their_cells(superuser: User) -> None:
    alert, other = make_alert(), make_alert()

    async def scenario() -> None:
        by_cluster = await connect(superuser)
        by_case = await connect(superuser)
        assert (await subscribe(by_cluster, f"cluster:{alert.cluster_id}"))["type"] == "subscribed"
        assert (await subscribe(by_case, f"case:{alert.case_id}"))["type"] == "subscribed"
        await sync_to_async(send_pair_changed)(other)
        await sync_to_async(send_pair_changed)(alert)
        for communicator in (by_cluster, by_case):
            frames = await drain(communicator, quiet=FLUSH * 3)
            cells = [c for f in frames for c in f["cells"]]
            assert [(c["case_id"], c["cluster_id"]) for c in cells] == [
                (alert.case_id, alert.cluster_id)
            ]
            await communicator.disconnect()

    run_async(scenario)


def test_users_get_only_cells_of_clusters_they_may_see(limited: tuple[User, int, int]) -> None:
    user, cluster_a, cluster_b = limited
    case = CaseFactory()
    seen = make_alert(case=case, cluster_id=cluster_a)
    hidden = make_alert(case=case, cluster_id=cluster_b)
    hidden_run = ProbeRun.objects.get(pk=hidden.latest_run_id)

    async def scenario() -> None:
        communicator = await connect(user)
        assert (await subscribe(communicator, "overview"))["type"] == "subscribed"
        # A case spans clusters: subscribing is allowed, its cells are filtered.
        assert (await subscribe(communicator, f"case:{case.pk}"))["type"] == "subscribed"
        for scope in (f"cluster:{cluster_b}", f"run:{hidden_run.pk}", "cluster:999999"):
            answer = await subscribe(communicator, scope)
            assert answer["type"] == "error" and answer["scope"] == scope
        assert (await subscribe(communicator, f"cluster:{cluster_a}"))["type"] == "subscribed"
        await sync_to_async(send_pair_changed)(hidden)
        await sync_to_async(send_pair_changed)(seen)
        await sync_to_async(send_pair_changed)(hidden)
        frames = await drain(communicator, quiet=FLUSH * 3)
        cells = [c for f in frames for c in f["cells"]]
        assert {c["cluster_id"] for c in cells} == {cluster_a}
        await communicator.disconnect()

    run_async(scenario)


def test_a_burst_is_coalesced_and_the_last_value_wins(superuser: User) -> None:
    alerts = [make_alert() for _ in range(10)]
    updates = 1000

    def burst() -> None:
        for i in range(updates):
            alert = alerts[i % len(alerts)]
            last_round = i >= updates - len(alerts)
            push.push_pair(
                case_id=alert.case_id,
                cluster_id=alert.cluster_id,
                state="firing" if last_round else "ok",
                severity="critical" if last_round else "warning",
                latest_state="failed" if last_round else "succeeded",
                latest_run_id=i,
            )

    async def scenario() -> None:
        communicator = await connect(superuser)
        assert (await subscribe(communicator, "overview"))["type"] == "subscribed"
        started = time.monotonic()
        await sync_to_async(burst)()
        took = time.monotonic() - started
        frames = await drain(communicator)
        # One frame at the start of the burst, then at most one per flush interval.
        assert 1 <= len(frames) <= took / FLUSH + 3, (len(frames), took)
        final: dict[tuple[int, int], dict[str, Any]] = {}
        for frame in frames:
            assert frame["type"] == "cells"
            assert len({(c["case_id"], c["cluster_id"]) for c in frame["cells"]}) == len(
                frame["cells"]
            )
            for cell in frame["cells"]:
                final[(cell["case_id"], cell["cluster_id"])] = cell
        assert len(final) == len(alerts)
        for index, alert in enumerate(alerts):
            cell = final[(alert.case_id, alert.cluster_id)]
            assert cell["alert_state"] == "firing" and cell["run_state"] == "failed"
            assert cell["run_id"] == updates - len(alerts) + index
        await communicator.disconnect()

    run_async(scenario)


def test_run_scope_gets_run_messages_and_dispatch_states_reach_the_cells(
    superuser: User,
) -> None:
    alert = make_alert()
    run = ProbeRunFactory(case=alert.case, cluster=alert.cluster, state="pending")

    def notify(state: str) -> None:
        run_state_changed.send(
            sender=ProbeRun,
            run_id=run.pk,
            case_id=run.case_id,
            cluster_id=run.cluster_id,
            state=state,
        )

    async def scenario() -> None:
        page = await connect(superuser)
        overview = await connect(superuser)
        assert (await subscribe(page, f"run:{run.pk}"))["type"] == "subscribed"
        assert (await subscribe(overview, "overview"))["type"] == "subscribed"
        await sync_to_async(notify)("running")
        assert await page.receive_json_from(timeout=2) == {
            "type": "run",
            "run_id": run.pk,
            "state": "running",
        }
        # No alert state: the page keeps the one it shows.
        assert await overview.receive_json_from(timeout=2) == {
            "type": "cells",
            "cells": [
                {
                    "case_id": run.case_id,
                    "cluster_id": run.cluster_id,
                    "run_state": "running",
                    "run_id": run.pk,
                }
            ],
        }
        # Final states come from the report thread: not pushed from there.
        await sync_to_async(notify)("succeeded")
        assert await page.receive_nothing(timeout=FLUSH * 2)
        assert await overview.receive_nothing(timeout=0.05)
        await page.disconnect()
        await overview.disconnect()

    run_async(scenario)


def test_bad_frames_get_an_error_and_the_socket_stays(superuser: User) -> None:
    async def scenario() -> None:
        communicator = await connect(superuser)
        for frame in ("not json", "[]", json.dumps({"type": "bogus"}), "x" * 5000):
            await communicator.send_to(text_data=frame)
            answer = await communicator.receive_json_from(timeout=2)
            assert answer["type"] == "error", frame
        for scope in ("cluster:abc", "cluster:", "everything", 7, None):
            answer = await subscribe(communicator, scope)  # type: ignore[arg-type]
            assert answer["type"] == "error", scope
        await communicator.send_to(bytes_data=b"\x00")
        assert (await communicator.receive_json_from(timeout=2))["type"] == "error"
        assert (await subscribe(communicator, "alerts"))["type"] == "subscribed"
        await communicator.disconnect()

    run_async(scenario)


def test_a_user_removed_meanwhile_is_disconnected(superuser: User, settings: Any) -> None:
    settings.KUBEPROBE_LIVE_ACCESS_REFRESH_SECONDS = 0
    alert = make_alert()

    async def scenario() -> None:
        communicator = await connect(superuser)
        assert (await subscribe(communicator, "overview"))["type"] == "subscribed"
        await database_sync_to_async(User.objects.filter(pk=superuser.pk).update)(is_active=False)
        await sync_to_async(send_pair_changed)(alert)
        assert await communicator.receive_output(timeout=2) == {
            "type": "websocket.close",
            "code": consumers.CLOSE_FORBIDDEN,
        }
        await communicator.disconnect()

    run_async(scenario)


def test_a_failing_push_does_not_break_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(push, "get_channel_layer", broken)
    push.push_pair(
        case_id=1, cluster_id=2, state="firing", severity="info", latest_state="failed",
        latest_run_id=3,
    )  # fmt: skip
    push.push_run_state(run_id=3, case_id=1, cluster_id=2, state="running")


@pytest.mark.django_db(transaction=False)
def test_group_names_and_payloads() -> None:
    import re

    pattern = re.compile(r"^[a-zA-Z0-9._-]+$")
    big = 10**18 - 1
    for scope in ("overview", "alerts", f"cluster:{big}", f"case:{big}", f"run:{big}"):
        parsed = push.parse_scope(scope)
        assert parsed is not None
        group = push.scope_group(*parsed)
        assert pattern.match(group) and len(group) < 100
    assert push.parse_scope("cluster:1 ") is None
    assert push.parse_scope("run:-1") is None
    with pytest.raises(ValueError, match="missing"):
        push.payload("cell", case_id=1)
    with pytest.raises(ValueError, match="unknown"):
        push.payload("run", run_id=1, state="running", cluster_id=1, colour="red")
    assert push.payload("run", for_browser=True, run_id=1, state="running", cluster_id=2) == {
        "type": "run",
        "run_id": 1,
        "state": "running",
    }
