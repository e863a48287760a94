"""Pushes that must not hold their caller (resident sample batches): queued, sent in
order by one task, and bounded when Redis falls behind."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from apps.dashboard import push
from tests.utils import wait_for


def test_queued_pushes_go_out_in_order_and_a_backlog_is_bounded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[int] = []
    redis_back = threading.Event()  # until set, the first send hangs as a stuck Redis would

    async def send_all(messages: list[tuple[str, dict[str, Any]]]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, redis_back.wait)
        sent.append(messages[0][1]["n"])

    monkeypatch.setattr(push, "_send_all", send_all)
    monkeypatch.setattr(push, "MAX_PENDING_PUSHES", 5)
    sender = push._PushLoop()
    for n in range(8):
        sender.send_nowait([("live.resident.1", {"n": n})])  # returns at once, Redis or not
    assert caplog.text.count("dropped: Redis is behind") == 3
    redis_back.set()
    wait_for(lambda: len(sent) == 5, timeout=10, what="the queued pushes")
    assert sent == [0, 1, 2, 3, 4]
    sender.send_nowait([("live.resident.1", {"n": 8})])  # room again
    wait_for(lambda: sent[-1] == 8, timeout=10, what="a push after the backlog")
