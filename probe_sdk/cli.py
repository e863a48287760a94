"""`kubeprobe-report success|failure [MESSAGE...]` for shell-based cases."""

from __future__ import annotations

import sys
from typing import List, Optional

from probe_sdk.client import ProbeEnvError, ReportRejected, report

USAGE = "usage: kubeprobe-report success | failure MESSAGE [MESSAGE...]"


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("success", "failure"):
        print(USAGE, file=sys.stderr)
        return 2
    ok = args[0] == "success"
    messages = args[1:]
    if ok and messages:
        print("kubeprobe-report: success takes no messages", file=sys.stderr)
        return 2
    try:
        report(ok, errors=messages or ([] if ok else ["failed (no message given)"]))
    except (ProbeEnvError, ReportRejected) as exc:
        print("kubeprobe-report: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
