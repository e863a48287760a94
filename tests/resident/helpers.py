"""Resident probes and sample batches for the tests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from apps.clusters.models import Cluster, ClusterGroup
from apps.resident.models import ResidentProbe
from apps.resident.services import resident_probe_create


def make_probe(
    name: str = "etcd-resident",
    *,
    clusters: list[Cluster] | None = None,
    groups: list[ClusterGroup] | None = None,
    **fields: Any,
) -> tuple[ResidentProbe, str]:
    fields.setdefault("image", "registry.example/resident:1")
    return resident_probe_create(
        fields={"name": name, **fields}, clusters=clusters or [], groups=groups or []
    )


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def windows(
    start: datetime,
    n: int = 3,
    *,
    seconds: float = 1.0,
    count: int = 10,
    failures: int = 0,
    p50: float = 3.0,
    p99: float = 9.0,
    top: float = 12.0,
    state: str = "up",
    errors: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        begin = start + timedelta(seconds=i * seconds)
        out.append(
            {
                "start": iso(begin),
                "end": iso(begin + timedelta(seconds=seconds)),
                "count": count,
                "failures": failures,
                "latency_ms": {"p50": p50, "p99": p99, "max": top},
                "state": state,
                "errors": errors or [],
            }
        )
    return out


def batch(
    probe: str,
    cluster: str,
    wins: list[dict[str, Any]],
    *,
    batch_id: str | None = None,
    dropped: int = 0,
) -> dict[str, Any]:
    return {
        "batch_id": batch_id or uuid.uuid4().hex,
        "probe": probe,
        "cluster": cluster,
        "dropped": dropped,
        "windows": wins,
    }


def post_samples(client: Any, body: Any, token: str | None, raw: bytes | None = None) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    data = raw if raw is not None else json.dumps(body).encode()
    return client.generic(
        "POST", "/api/v1/resident/samples", data, content_type="application/json", **headers
    )
