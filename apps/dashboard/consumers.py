"""The live websocket (``ws/live/``): pages subscribe to a scope and get patches.

Protocol (the pages' side is static/dashboard/live.js):

* client → ``{"type": "subscribe", "scope": "overview" | "alerts" | "incidents" | "cluster:<id>" |
  "case:<id>" | "run:<id>" | "incident:<id>"}``; server → ``{"type": "subscribed", "scope": ...}`` or
  ``{"type": "error", "detail": ...}``. A connection may hold several scopes.
* server → ``{"type": "rcell", "probe_id", "cluster_id", "state"}`` (overview only): a
  resident probe's cell changed state (up/down) or came back from silence.
* server → ``{"type": "cells", "cells": [...]}``: changed matrix cells, coalesced
  per connection (last write wins per (case, cluster)), at most one frame per
  ``KUBEPROBE_LIVE_FLUSH_SECONDS``; and ``{"type": "run", "run_id", "state"}``.

Anonymous connections are accepted only to be closed with code 4401, so the
page can tell "log in again" from a network drop. Every cell and run event is
checked against the clusters the user may see; that set is cached per
connection and refreshed every ``KUBEPROBE_LIVE_ACCESS_REFRESH_SECONDS``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import weakref
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model

from apps.dashboard import access, push

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
MAX_SCOPES = 16
MAX_FRAME_BYTES = 4096
DEFAULT_FLUSH_SECONDS = 0.25
DEFAULT_ACCESS_REFRESH_SECONDS = 30.0
# Group joins and leaves each borrow a Redis connection from the layer's pool
# (100 at most); a hundred pages reconnecting together after a restart would
# exhaust it. Bounded per event loop, they queue instead of failing.
GROUP_OP_CONCURRENCY = 16
_group_op_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _group_op_limit() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    limit = _group_op_limits.get(loop)
    if limit is None:
        limit = _group_op_limits[loop] = asyncio.Semaphore(GROUP_OP_CONCURRENCY)
    return limit


def _load_access(user_id: int) -> tuple[bool, set[int] | None]:
    """(still allowed to connect, visible clusters), read fresh: permissions change."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return False, set()
    return True, access.visible_cluster_ids(user)


def _scope_target(kind: str, object_id: int) -> tuple[bool, int | None]:
    """(exists, the cluster it belongs to): a cluster is its own, a run has one, a case none."""
    from apps.catalog.models import Case
    from apps.clusters.models import Cluster
    from apps.runs.models import ProbeRun

    if kind == "cluster":
        return Cluster.objects.filter(pk=object_id).exists(), object_id
    if kind == "resident":
        from apps.resident.models import ResidentProbe

        return ResidentProbe.objects.filter(pk=object_id).exists(), None
    if kind == "incident":
        from apps.diagnosis.models import Incident

        return Incident.objects.filter(pk=object_id).exists(), None
    if kind == "run":
        cluster_id = (
            ProbeRun.objects.filter(pk=object_id).values_list("cluster_id", flat=True).first()
        )
        return cluster_id is not None, cluster_id
    return Case.objects.filter(pk=object_id).exists(), None


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """One browser page. Each group event type maps to one method (``live_<kind>``)."""

    async def connect(self) -> None:
        self.user_id: int | None = None
        self.scopes: dict[str, str] = {}  # scope -> group
        self.pending: dict[tuple[int, int], dict[str, Any]] = {}
        self.visible: set[int] | None = set()
        self.visible_until = 0.0
        self.last_flush = 0.0
        self.flush_handle: asyncio.TimerHandle | None = None
        self.flush_task: asyncio.Task[None] | None = None
        self.closing = False
        self.flush_seconds = float(
            getattr(settings, "KUBEPROBE_LIVE_FLUSH_SECONDS", DEFAULT_FLUSH_SECONDS)
        )
        self.refresh_seconds = float(
            getattr(
                settings, "KUBEPROBE_LIVE_ACCESS_REFRESH_SECONDS", DEFAULT_ACCESS_REFRESH_SECONDS
            )
        )
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self._close(CLOSE_UNAUTHENTICATED)
            return
        self.user_id = user.pk
        await self._refresh_access(force=True)  # closes the socket if the user is gone

    async def disconnect(self, code: int) -> None:
        self.closing = True
        if self.flush_handle is not None:
            self.flush_handle.cancel()
        if self.flush_task is not None and not self.flush_task.done():
            self.flush_task.cancel()
        for group in set(self.scopes.values()):
            async with _group_op_limit():
                await self.channel_layer.group_discard(group, self.channel_name)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels runs close_old_connections before every handler: a hop to the
        # one thread that all sync code of the server shares (report views too),
        # per event and per page. With 100 pages that queue alone took seconds.
        # This consumer touches the database only through database_sync_to_async,
        # which closes old connections itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --------------------------------------------------------- from the page

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user_id is None or self.closing:
            return
        if text_data is None or len(text_data) > MAX_FRAME_BYTES:
            await self._error("send JSON text frames of at most 4 KiB")
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self._error("not JSON")
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "subscribe":
            await self.on_subscribe(content.get("scope"))
        elif kind == "ping":  # a keep-alive through proxies that drop idle sockets
            pass
        else:
            await self._error(f"unknown message type {kind!r}; send subscribe")

    async def on_subscribe(self, scope: Any) -> None:
        parsed = push.parse_scope(scope)
        if parsed is None:
            await self._error(
                "unknown scope; use overview, alerts, cluster:<id>, case:<id>, run:<id> "
                "or resident:<id>",
                scope=scope if isinstance(scope, str) else None,
            )
            return
        if scope in self.scopes:
            await self.send_json(push.payload("subscribed", scope=scope))
            return
        if len(self.scopes) >= MAX_SCOPES:
            await self._error(f"at most {MAX_SCOPES} scopes per connection", scope=scope)
            return
        kind, object_id = parsed
        if not await self._refresh_access():
            return
        if kind in ("incidents", "incident") and self.visible is not None:
            # Incidents span clusters: only those who see every cluster see them.
            await self._error(f"no {kind} that you may see", scope=scope)
            return
        if object_id is not None:
            exists, cluster_id = await database_sync_to_async(_scope_target)(kind, object_id)
            # Not found and not allowed read the same, so ids of hidden clusters do not leak.
            if not exists or (cluster_id is not None and not self._may_see(cluster_id)):
                await self._error(f"no {kind} {object_id} that you may see", scope=scope)
                return
        assert isinstance(scope, str)
        group = push.scope_group(kind, object_id)
        if group not in self.scopes.values():
            async with _group_op_limit():
                await self.channel_layer.group_add(group, self.channel_name)
        self.scopes[scope] = group
        await self.send_json(push.payload("subscribed", scope=scope))

    # ------------------------------------------------------- group events

    async def live_cell(self, event: dict[str, Any]) -> None:
        if not await self._refresh_access() or not self._may_see(event["cluster_id"]):
            return
        self._buffer({k: v for k, v in event.items() if k != "type"})
        self._schedule_flush()

    async def live_cells(self, event: dict[str, Any]) -> None:
        """A batch of re-judged pairs, coalesced by the process that pushed them (push.py)."""
        if not await self._refresh_access():
            return
        for cell in event["cells"]:
            if self._may_see(cell["cluster_id"]):
                self._buffer(cell)
        if self.pending:
            self._schedule_flush()

    def _buffer(self, cell: dict[str, Any]) -> None:
        key = (cell["case_id"], cell["cluster_id"])
        earlier = self.pending.get(key)
        # Last write wins, field by field: a "running" push without an alert
        # state must not erase the alert state of a buffered re-judgement.
        self.pending[key] = {**earlier, **cell} if earlier else cell

    async def live_incident(self, event: dict[str, Any]) -> None:
        if not await self._refresh_access() or self.visible is not None:
            return
        if "incidents" in self.scopes or f"incident:{event['incident_id']}" in self.scopes:
            fields = {k: v for k, v in event.items() if k != "type"}
            await self.send_json(push.payload("incident", for_browser=True, **fields))

    async def live_run(self, event: dict[str, Any]) -> None:
        if not await self._refresh_access() or not self._may_see(event["cluster_id"]):
            return
        if f"run:{event['run_id']}" not in self.scopes:
            return
        await self.send_json(
            push.payload("run", for_browser=True, **{k: v for k, v in event.items() if k != "type"})
        )

    async def live_samples(self, event: dict[str, Any]) -> None:
        if not await self._refresh_access() or not self._may_see(event["cluster_id"]):
            return
        fields = {k: v for k, v in event.items() if k != "type"}
        await self.send_json(push.payload("samples", for_browser=True, **fields))

    async def live_rcell(self, event: dict[str, Any]) -> None:
        if "overview" not in self.scopes:  # the alerts pages share the overview's group
            return
        if not await self._refresh_access() or not self._may_see(event["cluster_id"]):
            return
        fields = {k: v for k, v in event.items() if k != "type"}
        await self.send_json(push.payload("rcell", for_browser=True, **fields))

    # ------------------------------------------------------------ helpers

    def _may_see(self, cluster_id: int) -> bool:
        return self.visible is None or cluster_id in self.visible

    async def _refresh_access(self, force: bool = False) -> bool:
        """Re-read the user's visible clusters when the cached set is old; False if closed."""
        if self.closing or self.user_id is None:
            return False
        loop = asyncio.get_running_loop()
        if not force and loop.time() < self.visible_until:
            return True
        allowed, visible = await database_sync_to_async(_load_access)(self.user_id)
        if not allowed:
            await self._close(CLOSE_FORBIDDEN)
            return False
        self.visible = visible
        # Jitter spreads the refreshes of many pages opened together.
        self.visible_until = loop.time() + self.refresh_seconds * random.uniform(0.8, 1.0)  # noqa: S311
        return True

    def _schedule_flush(self) -> None:
        if self.flush_handle is not None or self.closing:
            return
        loop = asyncio.get_running_loop()
        # Leading edge: an isolated change goes out at once; a burst waits for the window.
        delay = max(0.0, self.last_flush + self.flush_seconds - loop.time())
        self.flush_handle = loop.call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self.flush_handle = None
        if not self.closing:
            self.flush_task = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        self.last_flush = asyncio.get_running_loop().time()
        cells, self.pending = list(self.pending.values()), {}
        if not cells or self.closing:
            return
        try:
            await self.send_json(push.payload("cells", cells=cells))
        except Exception:  # the socket went away between the event and the flush
            logger.debug("live flush to a closed socket dropped", exc_info=True)

    async def _error(self, detail: str, scope: str | None = None) -> None:
        await self.send_json(push.payload("error", detail=detail, scope=scope))

    async def _close(self, code: int) -> None:
        self.closing = True
        await self.close(code=code)
