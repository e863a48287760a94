"""The resident runner as a real process against the live portal's real
POST /api/v1/resident/samples (apps/resident), through a TCP gate that plays a
60-second center outage: denoised states and every sample stored once, in
windows without a gap."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection

from tests.factories import ClusterFactory
from tests.resident.gate import Gate
from tests.resident.helpers import make_probe
from tests.resident.test_runner import runner, samples_run, stop
from tests.utils import wait_for


def stored_windows(probe_id: int) -> list[tuple[Any, ...]]:
    # By probe: the raw sample tables are not emptied between transactional tests.
    with connection.cursor() as cur:
        cur.execute(
            'SELECT start, "end", count, failures, up FROM resident_window '
            "WHERE probe_id = %s ORDER BY start",
            [probe_id],
        )
        return list(cur.fetchall())


# The outage: a minute without the center.
OUTAGE_SECONDS = 60


@pytest.mark.django_db(transaction=True)
def test_the_runner_reports_to_the_portal_through_an_outage_without_a_gap(
    live_server: Any, tmp_path: Path
) -> None:
    cluster = ClusterFactory(name="prod-1")
    probe, token = make_probe("scripted", clusters=[cluster])

    def stored_samples() -> int:
        return sum(row[2] for row in stored_windows(probe.pk))

    address = urlsplit(live_server.url)
    gate = Gate(address.hostname or "127.0.0.1", address.port or 80)
    script = "ok*12,fail,ok*12,fail*3,ok*12"
    env = {"KUBEPROBE_RESIDENT_PROBE": probe.name, "KUBEPROBE_DENOISE_K": "3"}
    try:
        with runner(gate, tmp_path, script, token=token, **env) as (process, samples, log):
            wait_for(lambda: stored_samples() >= 45, timeout=30, what="45 samples stored")
            gate.close()
            down_at = time.monotonic()

            def outage_long_enough() -> bool:
                failed = log.read_text().count("not delivered")
                return failed >= 5 and time.monotonic() - down_at >= OUTAGE_SECONDS

            wait_for(
                outage_long_enough, timeout=OUTAGE_SECONDS + 30, what="the outage, with retries"
            )
            during = stored_samples()
            gate.open()
            ran_by_then = len(samples_run(samples))
            wait_for(lambda: stored_samples() >= ran_by_then, timeout=60, what="the backlog")
            assert stop(process) == 0
    finally:
        gate.close()
    assert during < ran_by_then  # the outage did hold samples back
    rows = stored_windows(probe.pk)
    ran = samples_run(samples)
    # Every sample is stored exactly once ...
    assert sum(r[2] for r in rows) == len(ran)
    assert sum(r[3] for r in rows) == ran.count("fail") == 4
    # ... in windows that follow each other without a gap, across the outage.
    for before, after in itertools.pairwise(rows):
        assert after[0] == before[1], (before, after)
    # One failure changed nothing; three in a row went down, then up again.
    states = [r[4] for r in rows]
    assert [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s] == [
        True,
        False,
        True,
    ]
