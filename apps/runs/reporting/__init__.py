"""Reports: how a probe's result reaches the database, and what it sets off.

One report's path, in order:

1. ``http`` — the endpoints: ``POST /api/v1/runs/<id>/report`` (KubeProbe) and
   ``POST /check`` (Kuberhealthy v3, also at ``/api/v1/kuberhealthy/check``).
   Reads the body and turns a refusal into each protocol's answer.
   ``fastpath`` serves the same answers in front of Django under gunicorn.
2. ``accept`` — finds the run, checks its token and deadline, validates the
   body with ``protocols`` (pure parsing and checks of both protocols).
3. ``store`` — the one write path: a conditional UPDATE (token, active
   state, deadline), grouped with other reports under load.
4. ``handoff`` — the stored run's (case, cluster) goes to the post-run
   pipeline (apps/postrun/pipeline.py): alerts judged, dashboards pushed.
"""
