"""Pushes of re-judged pairs are coalesced in the pushing process: a burst reaches each
group as a few `live.cells` events, each pair's last value wins, and nothing is lost."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.dashboard import push

WINDOW = 0.1


@pytest.fixture(autouse=True)
def layer(settings: Any) -> None:
    """The real Redis layer under a prefix of this pytest process."""
    default = settings.CHANNEL_LAYERS["default"]
    settings.CHANNEL_LAYERS = {
        "default": {
            **default,
            "CONFIG": {**default["CONFIG"], "prefix": f"kp-batch-{os.getpid()}:"},
        }
    }
    settings.KUBEPROBE_LIVE_PUSH_WINDOW_SECONDS = WINDOW


def listen(groups: list[str]) -> str:
    layer = get_channel_layer()

    async def join() -> str:
        channel = str(await layer.new_channel())
        for group in groups:
            await layer.group_add(group, channel)
        return channel

    return async_to_sync(join)()


def received(channel: str) -> list[dict[str, Any]]:
    layer = get_channel_layer()

    async def drain() -> list[dict[str, Any]]:
        import asyncio

        out = []
        while True:
            try:
                out.append(await asyncio.wait_for(layer.receive(channel), 0.5))
            except TimeoutError:
                return out

    return async_to_sync(drain)()


def test_a_burst_of_pairs_is_a_few_events_per_group_with_the_last_values() -> None:
    overview = listen([push.OVERVIEW_GROUP])
    one_cluster = listen([push.cluster_group(7)])
    pairs, updates = 200, 3000
    started = time.monotonic()
    for i in range(updates):
        push.push_pair(
            case_id=i % 20,
            cluster_id=(i // 20) % (pairs // 20),
            state="firing" if i >= updates - pairs else "ok",
            severity="critical",
            latest_state="failed" if i >= updates - pairs else "succeeded",
            latest_run_id=i + 1,
        )
    assert push.flush_pairs()
    took = time.monotonic() - started
    events = received(overview)
    assert all(e["type"] == "live.cells" for e in events)
    # The first change goes out at once, the rest at most once per window.
    assert 1 <= len(events) <= took / WINDOW + 2, (len(events), took)
    final: dict[tuple[int, int], dict[str, Any]] = {}
    for event in events:
        for cell in event["cells"]:
            final[(cell["case_id"], cell["cluster_id"])] = cell
    assert len(final) == pairs
    assert all(c["alert_state"] == "firing" and c["run_state"] == "failed" for c in final.values())
    assert final[(19, 9)]["run_id"] == updates  # the last push of that pair
    # A cluster's group gets only its own cells, also in batches.
    mine = [c for e in received(one_cluster) for c in e["cells"]]
    assert mine and {c["cluster_id"] for c in mine} == {7}


def test_an_isolated_change_is_sent_at_once(settings: Any, monkeypatch: Any) -> None:
    settings.KUBEPROBE_LIVE_PUSH_WINDOW_SECONDS = 5.0  # a wait would show, even on a busy machine
    monkeypatch.setattr(push, "_pairs", push._PairBatcher())  # nothing sent lately
    overview = listen([push.OVERVIEW_GROUP])
    started = time.monotonic()
    push.push_pair(
        case_id=1, cluster_id=2, state="firing", severity="info", latest_state="failed",
        latest_run_id=3,
    )  # fmt: skip
    assert push.flush_pairs()
    assert time.monotonic() - started < 2.5
    [event] = received(overview)
    assert event["cells"] == [
        {
            "case_id": 1,
            "cluster_id": 2,
            "run_state": "failed",
            "alert_state": "firing",
            "severity": "info",
            "run_id": 3,
        }
    ]
