"""What resident ingestion tells the rest of the system.

samples_stored: a batch was stored (sent after its transaction committed).
Arguments: probe_id, cluster_id, windows (a list of {t (unix start), count,
failures, p50, p99}), state ("up"/"down" at the newest window). Receivers
(dashboards) must be quick: they run in the ingestion request.
"""

from django.dispatch import Signal

samples_stored = Signal()
