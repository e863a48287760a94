"""Incidents: failures that share one cause, grouped.

Two shapes (settings in kubeprobe_site/settings.py, see docs/diagnosis.md):

* **case-wide**: the same case failing with the same signature (category,
  step, error without its variable parts) on at least
  KUBEPROBE_INCIDENT_MIN_CLUSTERS clusters within
  KUBEPROBE_INCIDENT_WINDOW_SECONDS: a common cause outside the clusters
  (the registry, the probe image, a shared dependency);
* **cluster-wide**: at least KUBEPROBE_INCIDENT_MIN_CASES cases failing on one
  cluster within the window: the cluster's own plumbing (API server, etcd,
  network). Its cause is the deepest category among the members' diagnoses.

A pair (its alert) is in at most one open incident; case-wide wins, since
then the cause lies outside the cluster. Members carry the incident on their
alert (Alert.incident_ref / incident_title) so notifications go per incident
(apps/alerts/delivery.py). A member leaves when its alert is ok again after
a success; the incident resolves when its last member has left.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.alerts.batch import alerts_ensure, alerts_exact
from apps.alerts.models import Alert, AlertState
from apps.core.db import rows_update
from apps.diagnosis.models import (
    Incident,
    IncidentEvent,
    IncidentEventKind,
    IncidentMember,
    IncidentScope,
    IncidentState,
    RunDiagnosis,
)
from apps.runs.models import ProbeRun, RootCause, RunState

# When many cases fail on one cluster, the deepest shared dependency is the cause.
DEPTH = (
    RootCause.ETCD,
    RootCause.CERTIFICATES,
    RootCause.NETWORK,
    RootCause.DNS,
    RootCause.APISERVER,
    RootCause.WEBHOOK,
    RootCause.RBAC,
    RootCause.NODE,
    RootCause.RUNTIME,
    RootCause.STORAGE,
    RootCause.SCHEDULER,
    RootCause.CONTROLLER,
)


def _window_start(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.KUBEPROBE_INCIDENT_WINDOW_SECONDS)


def _label(category: str) -> str:
    return str(RootCause(category).label) if category in RootCause.values else "unknown cause"


def _open_or_create(key: str, **fields: object) -> tuple[Incident, bool]:
    existing = Incident.objects.filter(key=key, state=IncidentState.OPEN).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():  # another worker may open the same one right now
            return Incident.objects.create(key=key, **fields), True
    except IntegrityError:
        return Incident.objects.get(key=key, state=IncidentState.OPEN), False


def _alerts_of(pairs: set[tuple[int, int]]) -> dict[tuple[int, int], Alert]:
    alerts_ensure(pairs=pairs)
    return {
        (alert.case_id, alert.cluster_id): alert
        for alert in Alert.objects.filter(pk__in=alerts_exact(pairs)).select_related(
            "case", "cluster"
        )
    }


def _join(incident: Incident, runs: dict[tuple[int, int], int], now: datetime) -> list[int]:
    """Make these pairs members (moving them out of a cluster-wide incident when this
    one is case-wide); returns the ids of incidents that changed. A statement per kind
    of write, whatever the number of pairs."""
    changed = {incident.pk}
    alerts = _alerts_of(set(runs))
    current = {
        m.alert_id: m
        for m in IncidentMember.objects.filter(
            alert_id__in=[a.pk for a in alerts.values()],
            left_at=None,
            incident__state=IncidentState.OPEN,
        ).select_related("incident")
    }
    staying: list[IncidentMember] = []  # already members: their newest run moves
    leaving: list[IncidentMember] = []  # moved here from a cluster-wide incident
    joining: list[IncidentMember] = []
    events = []
    for pair, alert in sorted(alerts.items()):
        member = current.get(alert.pk)
        if member is not None and member.incident_id == incident.pk:
            staying.append(IncidentMember(pk=member.pk, run_id=runs[pair]))
            continue
        if member is not None:
            if (
                member.incident.scope == IncidentScope.CASE
                or incident.scope == IncidentScope.CLUSTER
            ):
                continue  # already where it belongs
            member.left_at = now
            leaving.append(member)
            changed.add(member.incident_id)
            events.append(
                IncidentEvent(
                    incident_id=member.incident_id,
                    kind=IncidentEventKind.LEFT,
                    text=f"{alert.case.name} on {alert.cluster.name} moved to incident "
                    f"#{incident.pk} ({incident.title})",
                    at=now,
                )
            )
        joining.append(
            IncidentMember(incident=incident, alert=alert, run_id=runs[pair], left_at=None)
        )
        events.append(
            IncidentEvent(
                incident=incident,
                kind=IncidentEventKind.JOINED,
                text=f"{alert.case.name} on {alert.cluster.name} joined (run {runs[pair]})",
                at=now,
            )
        )
    rows_update(model=IncidentMember, objects=staying, fields=["run"])
    rows_update(model=IncidentMember, objects=leaving, fields=["left_at"])
    if joining:
        # A pair that was a member before (it left, then failed again) joins anew.
        IncidentMember.objects.bulk_create(
            joining,
            update_conflicts=True,
            unique_fields=["incident", "alert"],
            update_fields=["run", "left_at"],
        )
        Alert.objects.filter(pk__in=[m.alert_id for m in joining]).update(
            incident_ref=incident.ref, incident_title=incident.title[:300]
        )
    IncidentEvent.objects.bulk_create(events)
    Incident.objects.filter(pk=incident.pk).update(updated_at=now)
    for other in changed - {incident.pk}:
        _resolve_if_empty(other, now)
    return sorted(changed)


def _case_wide(diagnosis: RunDiagnosis, run: ProbeRun, now: datetime) -> list[int] | None:
    key = f"case:{run.case_id}:{diagnosis.signature}"
    newest: dict[tuple[int, int], int] = {}
    for run_id, cluster_id in (
        RunDiagnosis.objects.filter(
            run__case_id=run.case_id,
            signature=diagnosis.signature,
            created_at__gte=_window_start(now),
        )
        .order_by("run_id")
        .values_list("run_id", "run__cluster_id")
    ):
        newest[(run.case_id, cluster_id)] = run_id
    newest[(run.case_id, run.cluster_id)] = run.pk
    is_open = Incident.objects.filter(key=key, state=IncidentState.OPEN).exists()
    if not is_open and len(newest) < settings.KUBEPROBE_INCIDENT_MIN_CLUSTERS:
        return None
    incident, created = _open_or_create(
        key,
        scope=IncidentScope.CASE,
        title=f"{run.case.name} failing on many clusters: {_label(diagnosis.category)}",
        case_id=run.case_id,
        category=diagnosis.category,
        component=diagnosis.component,
        confidence=diagnosis.confidence,
        source=diagnosis.source,
        summary=diagnosis.summary,
        opened_at=now,
        updated_at=now,
    )
    if created:
        IncidentEvent.objects.create(
            incident=incident,
            kind=IncidentEventKind.OPENED,
            text=f"{len(newest)} clusters fail {run.case.name} the same way within "
            f"{settings.KUBEPROBE_INCIDENT_WINDOW_SECONDS} s: {_label(diagnosis.category)}",
            at=now,
        )
    return _join(incident, newest if created else {(run.case_id, run.cluster_id): run.pk}, now)


def _cluster_wide(run: ProbeRun, now: datetime) -> list[int] | None:
    key = f"cluster:{run.cluster_id}"
    in_case_wide = set(
        IncidentMember.objects.filter(
            alert__cluster_id=run.cluster_id,
            left_at=None,
            incident__state=IncidentState.OPEN,
            incident__scope=IncidentScope.CASE,
        ).values_list("alert__case_id", flat=True)
    )
    if run.case_id in in_case_wide:
        return None
    newest: dict[tuple[int, int], int] = {}
    categories: dict[int, str] = {}
    for run_id, case_id, category in (
        RunDiagnosis.objects.filter(
            run__cluster_id=run.cluster_id, created_at__gte=_window_start(now)
        )
        .exclude(run__case_id__in=in_case_wide)
        .order_by("run_id")
        .values_list("run_id", "run__case_id", "category")
    ):
        newest[(case_id, run.cluster_id)] = run_id
        categories[case_id] = category
    # A case that succeeded after its failure is not failing any more.
    for case_id, last_success in (
        ProbeRun.objects.filter(
            cluster_id=run.cluster_id,
            case_id__in=[c for c, _ in newest],
            state=RunState.SUCCEEDED,
            finished_at__gte=_window_start(now),
        )
        .values("case_id")
        .annotate(last=Max("id"))
        .values_list("case_id", "last")
    ):
        if last_success > newest[(case_id, run.cluster_id)]:
            del newest[(case_id, run.cluster_id)]
            categories.pop(case_id, None)
    newest[(run.case_id, run.cluster_id)] = run.pk
    is_open = Incident.objects.filter(key=key, state=IncidentState.OPEN).exists()
    if not is_open and len(newest) < settings.KUBEPROBE_INCIDENT_MIN_CASES:
        return None
    present = Counter(c for c in categories.values() if c)
    cause = next((c for c in DEPTH if c in present), None) or (
        present.most_common(1)[0][0] if present else ""
    )
    sample = RunDiagnosis.objects.filter(run_id__in=list(newest.values()), category=cause).first()
    incident, created = _open_or_create(
        key,
        scope=IncidentScope.CLUSTER,
        title=f"{len(newest)} cases failing on {run.cluster.name}: {_label(cause)}",
        cluster_id=run.cluster_id,
        category=cause,
        component=sample.component if sample else "",
        confidence=sample.confidence if sample else 0.0,
        source=sample.source if sample else "",
        summary=sample.summary if sample else "",
        opened_at=now,
        updated_at=now,
    )
    if created:
        IncidentEvent.objects.create(
            incident=incident,
            kind=IncidentEventKind.OPENED,
            text=f"{len(newest)} cases fail on {run.cluster.name} within "
            f"{settings.KUBEPROBE_INCIDENT_WINDOW_SECONDS} s; the deepest cause among them: "
            f"{_label(cause)} ({', '.join(sorted(present)) or 'undiagnosed'})",
            at=now,
        )
    return _join(incident, newest if created else {(run.case_id, run.cluster_id): run.pk}, now)


def incidents_attach(
    *, run: ProbeRun, diagnosis: RunDiagnosis, now: datetime | None = None
) -> list[int]:
    """Put a diagnosed failed run's pair into the incident it belongs to, opening one
    when the thresholds are reached; returns the ids of incidents that changed."""
    now = now or timezone.now()
    with transaction.atomic():
        changed = _case_wide(diagnosis, run, now)
        if changed is None:
            changed = _cluster_wide(run, now)
    return changed or []


def _resolve_if_empty(incident_id: int, now: datetime) -> bool:
    if IncidentMember.objects.filter(incident_id=incident_id, left_at=None).exists():
        return False
    resolved = Incident.objects.filter(pk=incident_id, state=IncidentState.OPEN).update(
        state=IncidentState.RESOLVED, resolved_at=now, updated_at=now
    )
    if resolved:
        IncidentEvent.objects.create(
            incident_id=incident_id,
            kind=IncidentEventKind.RESOLVED,
            text="every member recovered",
            at=now,
        )
    return bool(resolved)


def incidents_recover(*, alert: Alert, now: datetime | None = None) -> list[int]:
    """A pair whose alert is ok after a success leaves its open incidents (resolving
    those left empty); returns the ids of incidents that changed."""
    if alert.state != AlertState.OK or alert.latest_state != RunState.SUCCEEDED:
        return []
    now = now or timezone.now()
    with transaction.atomic():
        # The incidents first, in id order, then the members: the incident row
        # serialises its last members leaving (one of them resolves it), and every
        # caller taking them in this order cannot deadlock. One FOR UPDATE over the
        # join locked the incident, member, alert, case and cluster rows in plan
        # order, and two alerts workers (or the sweep's transaction and a worker)
        # recovering members of one incident deadlocked (tests/postrun/test_scale_out.py).
        open_members = IncidentMember.objects.filter(
            alert=alert, left_at=None, incident__state=IncidentState.OPEN
        )
        list(
            Incident.objects.select_for_update()
            .filter(pk__in=open_members.values("incident_id"))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        members = list(
            open_members.select_for_update(of=("self",))
            .order_by("pk")
            .select_related("alert__case", "alert__cluster")
        )
        if not members:
            return []
        for member in members:
            member.left_at = now
            member.save(update_fields=["left_at"])
            IncidentEvent.objects.create(
                incident_id=member.incident_id,
                kind=IncidentEventKind.LEFT,
                text=f"{alert.case.name} on {alert.cluster.name} recovered",
                at=now,
            )
            _resolve_if_empty(member.incident_id, now)
        Alert.objects.filter(pk=alert.pk).update(incident_ref="", incident_title="")
    return [m.incident_id for m in members]


def incidents_attach_many(
    *, diagnosed: list[tuple[ProbeRun, RunDiagnosis]], now: datetime | None = None
) -> list[int]:
    """incidents_attach() of many diagnosed failed runs (the post-run pipeline's batch).

    A pair already in the open case-wide incident its new diagnosis points to (the
    usual case while an incident lasts) only moves its member to the new run: one
    UPDATE for all of them, as the single-run path's _join does for each. Every
    other run takes the single-run path. Returns the incidents that changed.
    """
    if not diagnosed:
        return []
    now = now or timezone.now()
    keys = {run.pk: f"case:{run.case_id}:{d.signature}" for run, d in diagnosed}
    members = {
        (case_id, cluster_id): (member_id, incident_id, key)
        for member_id, case_id, cluster_id, incident_id, key in IncidentMember.objects.filter(
            alert__case_id__in={run.case_id for run, _ in diagnosed},
            alert__cluster_id__in={run.cluster_id for run, _ in diagnosed},
            left_at=None,
            incident__state=IncidentState.OPEN,
            incident__scope=IncidentScope.CASE,
        ).values_list("pk", "alert__case_id", "alert__cluster_id", "incident_id", "incident__key")
    }
    moved: dict[int, int] = {}  # member -> run
    changed: set[int] = set()
    rest = []
    for run, diagnosis in diagnosed:
        member = members.get((run.case_id, run.cluster_id))
        if member is not None and member[2] == keys[run.pk]:
            moved[member[0]] = run.pk
            changed.add(member[1])
        else:
            rest.append((run, diagnosis))
    if moved:
        with transaction.atomic():
            rows_update(
                model=IncidentMember,
                objects=[IncidentMember(pk=m, run_id=r) for m, r in moved.items()],
                fields=["run"],
            )
            Incident.objects.filter(pk__in=changed).update(updated_at=now)
    # The others, one incident key at a time. Where the key's incident is open, all its
    # runs join in one go, as each would have joined alone; where it is not, the first
    # run decides (opens it, or not yet) and the rest follow it.
    by_key: dict[str, list[tuple[ProbeRun, RunDiagnosis]]] = {}
    for run, diagnosis in rest:
        by_key.setdefault(keys[run.pk], []).append((run, diagnosis))
    opened = {
        i.key: i for i in Incident.objects.filter(key__in=list(by_key), state=IncidentState.OPEN)
    }
    for key, items in by_key.items():
        incident = opened.get(key)
        if incident is None:
            run, diagnosis = items[0]
            changed.update(incidents_attach(run=run, diagnosis=diagnosis, now=now))
            items = items[1:]
            incident = Incident.objects.filter(key=key, state=IncidentState.OPEN).first()
            if incident is None:
                for run, diagnosis in items:
                    changed.update(incidents_attach(run=run, diagnosis=diagnosis, now=now))
                continue
        if items:
            with transaction.atomic():
                joining = {(r.case_id, r.cluster_id): r.pk for r, _ in items}
                changed.update(_join(incident, joining, now))
    return sorted(changed)


def incidents_recover_many(*, alerts: list[Alert], now: datetime | None = None) -> list[int]:
    """incidents_recover() of many judged alerts, in one transaction: their open
    memberships are locked and left together, each emptied incident resolves."""
    recovered = {
        a.pk: a for a in alerts if a.state == AlertState.OK and a.latest_state == RunState.SUCCEEDED
    }
    if not recovered:
        return []
    now = now or timezone.now()
    with transaction.atomic():
        members = list(
            IncidentMember.objects.select_for_update(of=("self",))
            .filter(alert_id__in=list(recovered), left_at=None, incident__state=IncidentState.OPEN)
            .order_by("pk")
        )
        if not members:
            return []
        IncidentMember.objects.filter(pk__in=[m.pk for m in members]).update(left_at=now)
        IncidentEvent.objects.bulk_create(
            [
                IncidentEvent(
                    incident_id=m.incident_id,
                    kind=IncidentEventKind.LEFT,
                    text=f"{recovered[m.alert_id].case.name} on "
                    f"{recovered[m.alert_id].cluster.name} recovered",
                    at=now,
                )
                for m in members
            ]
        )
        for incident_id in sorted({m.incident_id for m in members}):
            _resolve_if_empty(incident_id, now)
        Alert.objects.filter(pk__in={m.alert_id for m in members}).update(
            incident_ref="", incident_title=""
        )
    return [m.incident_id for m in members]
