"""Runs one local case command and records how it ended.

Started by the local executor as its own process (and session), so it outlives
the Celery task that launched it: `python _local_supervisor.py RUN_DIR TIMEOUT -- CMD...`.
Writes RUN_DIR/output.log, RUN_DIR/child.pid and, at the end, RUN_DIR/exit_code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    run_dir, timeout = Path(argv[0]), float(argv[1])
    command = argv[3:]
    with open(run_dir / "output.log", "ab", buffering=0) as log:
        try:
            child = subprocess.Popen(  # noqa: S603 (the case's own command)
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            log.write(f"kubeprobe: cannot start {command[0]!r}: {exc}\n".encode())
            code = 127
        else:
            (run_dir / "child.pid").write_text(str(child.pid))
            try:
                code = child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                code = child.wait()
                log.write(f"kubeprobe: killed after {timeout:.0f}s (case timeout)\n".encode())
    tmp = run_dir / "exit_code.tmp"
    tmp.write_text(str(code))
    tmp.replace(run_dir / "exit_code")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
