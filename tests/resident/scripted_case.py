"""A resident case for the runner tests, loaded by KUBEPROBE_SAMPLE=<this file>.

SCRIPT lists outcomes in order, e.g. `ok*10,fail,ok*10` (then ok for ever);
each sample appends its outcome to SAMPLES_FILE, so a test knows exactly how
many samples ran and can compare with what the center received.
"""

import os

from probe_sdk.resident import Steps

PLAN: list = []
for item in os.environ.get("SCRIPT", "").split(","):
    if item.strip():
        outcome, _, times = item.strip().partition("*")
        PLAN.extend([outcome] * int(times or 1))
done = 0


def sample():
    global done
    outcome = PLAN[done] if done < len(PLAN) else "ok"
    done += 1
    with open(os.environ["SAMPLES_FILE"], "a") as handle:
        handle.write(outcome + "\n")
    steps = Steps()
    with steps.step("connect"):
        if outcome == "fail":
            raise RuntimeError(f"scripted failure {done}")
    return steps.timings
