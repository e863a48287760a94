"""What alerting tells the rest of the system, after the change is committed.

pair_changed: a (case, cluster) pair was re-judged or its alert flipped.
Arguments: alert_id, case_id, cluster_id, state (alert state), severity,
latest_state (state of the newest finished run), latest_run_id. Receivers
(dashboards) must be quick: they run in the worker that evaluated the pair.
"""

from django.dispatch import Signal

pair_changed = Signal()
