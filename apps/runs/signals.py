"""What the run loop tells the rest of the system, after the change is committed.

Receivers (alerting, dashboards, diagnosis) get ids and states, never model
instances, and must be quick: heavy work goes to a Celery task.
"""

from django.dispatch import Signal

# run_id, case_id, cluster_id, state (a RunState value)
run_state_changed = Signal()
# runs: list of (run_id, case_id, cluster_id), state — many runs moved at once
# (batch dispatch), so receivers can push them together
runs_state_changed = Signal()
# run_id, case_id, cluster_id, state, ok — the run reached a final state
run_finished = Signal()
