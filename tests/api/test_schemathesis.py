"""Schemathesis against the live schema over real HTTP: generated requests, as a
superuser, a viewer and anonymously, must get no server error and answers that match
the schema (status codes, content types, headers, bodies).

`POST /api/v1/channels/{name}/test/` is left out: it sends a real notification.
Budget: KUBEPROBE_SCHEMATHESIS_SECONDS (120) per caller at most (45 s once left a
busy CI machine in the coverage phase, 13 operations in), up to 5 examples per
operation and phase; KUBEPROBE_SCHEMATHESIS_SEED picks another seed (the default one is fixed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeprobe_site.celery import app as celery_app
from tests.api.schema_world import seed

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
# Sends a real notification through the channel's transport.
EXCLUDED = r"^/api/v1/channels/\{name\}/test/$"
SECONDS = os.environ.get("KUBEPROBE_SCHEMATHESIS_SECONDS", "120")
SEED = os.environ.get("KUBEPROBE_SCHEMATHESIS_SEED", "20261207")


@pytest.fixture
def purged_queues() -> Iterator[None]:
    """Requested runs and fired events enqueue tasks that no worker here takes: drop
    them, so a later test's real worker never meets them."""
    yield
    celery_app.control.purge()


@pytest.mark.timeout(240)
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("purged_queues")
@pytest.mark.parametrize("caller", ["superuser", "viewer", "anonymous"])
def test_the_api_answers_as_its_schema_says(live_server, tmp_path: Path, caller: str) -> None:  # type: ignore[no-untyped-def]
    tokens = seed()
    headers = [] if caller == "anonymous" else ["-H", f"Authorization: Bearer {tokens[caller]}"]
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{live_server.url}/api/schema/",
        *headers,
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "5",
        "--max-time",
        SECONDS,
        "--seed",
        SEED,
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--exclude-path-regex",
        EXCLUDED,
        "--no-color",
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,  # its hypothesis database and reports stay out of the tree
        capture_output=True,
        text=True,
        timeout=int(SECONDS) + 120,
        check=False,
    )
    output = result.stdout + result.stderr
    # The failures, with a curl line for each, come before the warnings and summary.
    failures = output.split("=== WARNINGS", 1)[0]
    tail = failures[-12000:] + output[-1500:]
    assert result.returncode == 0, tail
    # It really ran: (nearly) every operation, hundreds of requests at least (how many
    # fit in the budget depends on the machine).
    tested = re.search(r"Tested:\s+(\d+)", output)
    generated = re.search(r"(\d+) generated", output)
    assert tested and int(tested.group(1)) >= 60, tail
    assert generated and int(generated.group(1)) >= 100, tail
