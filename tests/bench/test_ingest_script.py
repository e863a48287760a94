"""bench/ingest.py's wrk script, run by the real wrk against a recording HTTP server.

When a wrk thread has used up its runs it must send nothing else (answers to
other requests would count as accepted reports), and the phase must fail.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import ingest  # bench/ingest.py, importable through tests/bench/conftest.py
import pytest

pytestmark = pytest.mark.skipif(not shutil.which("wrk"), reason="needs wrk (apt-get install wrk)")

RUNS = {str(100 + n): f"token-{n}" for n in range(6)}


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, str]] = []  # method, path, Authorization


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the portal's server answers wrk

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        server = self.server
        assert isinstance(server, Recorder)
        with server.lock:
            server.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
        body = b'{"id": 1, "state": "failed"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_threads_out_of_runs_send_nothing_else_and_fail_the_phase(
    recorder: Recorder, tmp_path: Path
) -> None:
    script = tmp_path / "report.lua"
    script.write_text(ingest.LUA)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("".join(f"{run} {token}\n" for run, token in RUNS.items()))
    base = f"http://127.0.0.1:{recorder.server_address[1]}/"

    # 2 threads x 2 connections share 6 runs: both threads run dry well within the second.
    result = ingest.wrk(base, 1, 4, script, [str(tokens), "2"])

    with recorder.lock:
        seen = list(recorder.seen)
    report = re.compile(r"/api/v1/runs/(\d+)/report")
    reported = []
    for method, path, auth in seen:
        match = report.fullmatch(path)
        assert method == "POST" and match, f"not a report: {method} {path}"
        run = match.group(1)
        assert auth == f"Bearer {RUNS[run]}"
        reported.append(run)
    assert len(reported) == len(set(reported)), "a run reported more than once"
    # Both threads reported their share (wrk's start-up check takes thread 0's first run).
    assert set(RUNS) - {"100"} <= set(reported)
    assert result["requests"] <= len(seen)  # wrk counted answers to reports only
    assert result["threads"] == 2 and result["threads_out_of_runs"] == 2
    failure = ingest.phase_failure(result, "round 1", len(RUNS))
    assert failure is not None
    assert (
        "ran out of runs" in failure and "more --runs" in failure and "fewer --seconds" in failure
    )


def test_a_phase_with_runs_left_in_every_thread_passes(recorder: Recorder, tmp_path: Path) -> None:
    script = tmp_path / "report.lua"
    script.write_text(ingest.LUA)
    tokens = tmp_path / "tokens.txt"
    # Far more runs than a stdlib server answers in half a second.
    many = {str(1000 + n): f"t{n}" for n in range(200_000)}
    tokens.write_text("".join(f"{run} {token}\n" for run, token in many.items()))
    base = f"http://127.0.0.1:{recorder.server_address[1]}/"

    result = ingest.wrk(base, 1, 2, script, [str(tokens), "2"])

    assert result["threads"] == 2 and result["threads_out_of_runs"] == 0
    assert result["requests"] > 0
    assert ingest.phase_failure(result, "round 1", len(many)) is None
    with recorder.lock:
        paths = [path for _, path, _ in recorder.seen]
    assert len(paths) == len(set(paths))
