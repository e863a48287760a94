"""Runs one local case command and records how it ended.

Started by the local executor as its own process (and session), so it outlives
the Celery task that launched it: `python _local_supervisor.py RUN_DIR TIMEOUT LOCK_FD -- CMD...`.
Writes RUN_DIR/output.log, RUN_DIR/child.pid and, at the end, RUN_DIR/exit_code.

LOCK_FD is RUN_DIR/lock, locked (flock) by the executor before this process
started and inherited by it: while the lock is held, this supervisor is alive, so
the executor never needs to trust a pid file (a pid can be reused). SIGTERM makes
it kill its command's process group, which it alone can do safely: the command is
its own child, so its pid cannot be reused before it is waited for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    run_dir, timeout, lock_fd = Path(argv[0]), float(argv[1]), int(argv[2])
    command = argv[4:]
    os.set_inheritable(lock_fd, False)  # held here only, never by the command
    child: subprocess.Popen[bytes] | None = None
    stopped = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopped
        stopped = True
        if child is not None:
            os.killpg(child.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop)
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
            if stopped:  # SIGTERM came while the command was starting
                os.killpg(child.pid, signal.SIGKILL)
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
