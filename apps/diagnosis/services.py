"""Writes of the diagnosis app: diagnose a run, label runs and incidents, retrain.

`run_diagnose()` is the post-run pipeline's diagnosis step: the rule tree
first; when no rule matches, or the one that does is less sure than
KUBEPROBE_DIAGNOSIS_MIN_CONFIDENCE, the learned classifier is asked and its
suggestion wins if it is surer (marked "learned"). An operator's label
always wins and is kept. Incidents are in incidents.py.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext_noop

from apps.alerts.models import Alert
from apps.core.db import rows_update
from apps.core.said import say, stored, word
from apps.diagnosis import classifier
from apps.diagnosis import said as msgs
from apps.diagnosis.defaults import RULES
from apps.diagnosis.models import (
    ClassifierModel,
    DiagnosisRule,
    Incident,
    IncidentEvent,
    IncidentEventKind,
    RunDiagnosis,
)
from apps.diagnosis.rules import Evidence, RuleSpec, first_match, signature
from apps.diagnosis.selectors import FAILED_STATES, evidence_of, rules_enabled
from apps.runs.models import ProbeRun, RootCause, RootCauseSource

logger = logging.getLogger(__name__)

# Stored in English, shown through gettext like the shipped rules' summaries.
LEARNED_SUMMARY = gettext_noop("suggested by the classifier trained on labelled failures")
OPERATOR_SUMMARY = gettext_noop("confirmed by an operator")


def rules_load_shipped(*, model: Any = DiagnosisRule, reset: bool = False) -> int:
    """Create the shipped rules that are missing (reset: also restore edited ones).
    `model` lets the data migration pass its historical model. Returns rules written."""
    written = 0
    for i, rule in enumerate(RULES):
        fields = {k: v for k, v in rule.items() if k not in ("name", "example")}
        fields.update(order=(i + 1) * 10, shipped=True)
        if reset:
            model.objects.update_or_create(name=rule["name"], defaults=fields)
            written += 1
        elif not model.objects.filter(name=rule["name"]).exists():
            model.objects.create(name=rule["name"], **fields)
            written += 1
    return written


# The newest classifier, loaded once per process and version.
_loaded: dict[str, Any] = {"version": None, "pipeline": None}


def _classifier() -> Any:
    newest = ClassifierModel.objects.aggregate(v=Max("version"))["v"]
    if newest is None:
        return None
    if _loaded["version"] != newest:
        row = ClassifierModel.objects.get(version=newest)
        _loaded.update(version=newest, pipeline=classifier.loads(bytes(row.blob)))
    return _loaded["pipeline"]


def _suggest(evidence: Evidence) -> tuple[str, float] | None:
    try:
        pipeline = _classifier()
        return classifier.predict(pipeline, evidence) if pipeline is not None else None
    except Exception:  # a broken model must never cost the run its diagnosis
        logger.exception("diagnosis: the classifier failed")
        return None


def verdict_of(evidence: Evidence, rules: list[RuleSpec] | None = None) -> dict[str, Any]:
    """The diagnosis of some evidence: rules first, the classifier when they are unsure.
    ``rules``: the enabled rules, when the caller read them already (a batch)."""
    rule = first_match(rules_enabled() if rules is None else rules, evidence)
    verdict: dict[str, Any] = {"rule": None, "category": "", "component": "", "confidence": 0.0}
    if rule is not None:
        verdict.update(
            rule=rule,
            category=rule.category,
            component=rule.component,
            confidence=rule.confidence,
            summary=rule.summary,
            source=RootCauseSource.RULE,
        )
    if rule is None or rule.confidence < settings.KUBEPROBE_DIAGNOSIS_MIN_CONFIDENCE:
        suggestion = _suggest(evidence)
        if suggestion is not None:
            verdict.update(learned_category=suggestion[0], learned_confidence=suggestion[1])
            if suggestion[1] > verdict["confidence"]:
                verdict.update(
                    rule=None,
                    category=suggestion[0],
                    component="",
                    confidence=suggestion[1],
                    summary=LEARNED_SUMMARY,
                    source=RootCauseSource.LEARNED,
                )
    on_node = (RootCause.NODE, RootCause.RUNTIME, RootCause.NETWORK)
    if verdict["category"] in on_node and evidence.node:
        verdict["component"] = f"{verdict['component'] or 'node'} on {evidence.node}"
    return verdict


def _copy_to_run(diagnosis: RunDiagnosis) -> None:
    ProbeRun.objects.filter(pk=diagnosis.run_id).update(
        root_cause=diagnosis.category,
        root_cause_component=diagnosis.component,
        root_cause_confidence=diagnosis.confidence if diagnosis.category else None,
        root_cause_source=diagnosis.source,
        root_cause_summary=diagnosis.summary,
    )


def _new_diagnosis(run: ProbeRun, rules: list[RuleSpec] | None = None) -> RunDiagnosis:
    evidence = evidence_of(run)
    verdict = verdict_of(evidence, rules)
    rule = verdict["rule"]
    return RunDiagnosis(
        run=run,
        category=verdict["category"],
        component=verdict["component"],
        confidence=round(verdict["confidence"], 3),
        source=verdict.get("source", ""),
        rule_id=rule.pk if rule is not None else None,
        summary=verdict.get("summary", ""),
        evidence={**evidence.as_json(), "rule": rule.name if rule else ""},
        signature=signature(
            category=verdict["category"],
            step=evidence.step,
            error=evidence.error,
            cluster_names=(run.cluster.name,),
        ),
        learned_category=verdict.get("learned_category", ""),
        learned_confidence=verdict.get("learned_confidence"),
    )


def run_diagnose(*, run: ProbeRun) -> RunDiagnosis | None:
    """Diagnose a failed run (once: a run already diagnosed is returned as it is)."""
    if run.state not in FAILED_STATES:
        return None
    existing = RunDiagnosis.objects.filter(run=run).first()
    if existing is not None:
        return existing
    diagnosis = _new_diagnosis(run)
    with transaction.atomic():
        RunDiagnosis.objects.bulk_create([diagnosis], ignore_conflicts=True)
        diagnosis = RunDiagnosis.objects.get(run=run)
        _copy_to_run(diagnosis)
    return diagnosis


def runs_diagnose_many(*, runs: list[ProbeRun]) -> dict[int, RunDiagnosis]:
    """run_diagnose() of many runs (the post-run pipeline's batch): the failed ones get
    their diagnosis, by run id. The rules are read once, the new diagnoses inserted and
    copied onto their runs with one statement each."""
    failed = {run.pk: run for run in runs if run.state in FAILED_STATES}
    if not failed:
        return {}
    found = {d.run_id: d for d in RunDiagnosis.objects.filter(run_id__in=list(failed))}
    # In id order, as every worker inserts and updates them: overlapping batches wait
    # for each other instead of deadlocking.
    missing = sorted((r for pk, r in failed.items() if pk not in found), key=lambda r: r.pk)
    if not missing:
        return found
    rules = rules_enabled()
    with transaction.atomic():
        RunDiagnosis.objects.bulk_create(
            [_new_diagnosis(run, rules) for run in missing], ignore_conflicts=True
        )
        # Read back: a concurrent worker may have stored one first, and its stays.
        stored = list(
            RunDiagnosis.objects.filter(run_id__in=[r.pk for r in missing]).order_by("run_id")
        )
        for diagnosis in stored:
            run = failed[diagnosis.run_id]
            run.root_cause, run.root_cause_component = diagnosis.category, diagnosis.component
            run.root_cause_confidence = diagnosis.confidence if diagnosis.category else None
            run.root_cause_source, run.root_cause_summary = diagnosis.source, diagnosis.summary
        rows_update(
            model=ProbeRun,
            objects=[failed[d.run_id] for d in stored],
            fields=[
                "root_cause",
                "root_cause_component",
                "root_cause_confidence",
                "root_cause_source",
                "root_cause_summary",
            ],
        )
    found.update((d.run_id, d) for d in stored)
    return found


def _apply_label(diagnosis: RunDiagnosis, category: str, user: Any, now: Any) -> None:
    diagnosis.labelled_category = category
    diagnosis.labelled_by = user
    diagnosis.labelled_at = now
    if category != diagnosis.category or diagnosis.source != RootCauseSource.OPERATOR:
        diagnosis.category, diagnosis.source = category, RootCauseSource.OPERATOR
        diagnosis.confidence = 1.0
        if diagnosis.rule_id and diagnosis.rule and diagnosis.rule.category == category:
            diagnosis.summary = diagnosis.rule.summary
        else:
            diagnosis.rule, diagnosis.component, diagnosis.summary = None, "", OPERATOR_SUMMARY
    diagnosis.save()
    _copy_to_run(diagnosis)
    # The alerts pointing at this run say it too.
    Alert.objects.filter(last_run_id=diagnosis.run_id).update(
        root_cause=diagnosis.category,
        root_cause_component=diagnosis.component,
        root_cause_confidence=diagnosis.confidence,
        root_cause_source=diagnosis.source,
        root_cause_summary=diagnosis.summary,
    )


def run_label(*, run_id: int, category: str, user: Any = None) -> RunDiagnosis:
    """An operator confirms or corrects a failed run's root cause (a training label)."""
    if category not in RootCause.values:
        raise ValueError(f"unknown root cause {category!r}")
    run = ProbeRun.objects.select_related("case__template", "cluster").get(pk=run_id)
    if run.state not in FAILED_STATES:
        raise ValueError(f"run {run_id} did not fail ({run.state}): nothing to label")
    with transaction.atomic():
        diagnosis = run_diagnose(run=run)
        assert diagnosis is not None
        diagnosis = (
            RunDiagnosis.objects.select_for_update(of=("self",))
            .select_related("rule")
            .get(pk=diagnosis.pk)
        )
        _apply_label(diagnosis, category, user, timezone.now())
    return diagnosis


def incident_label(
    *, incident_id: int, category: str, user: Any = None, note: str = ""
) -> Incident:
    """An operator confirms or corrects an incident's root cause; every member's
    newest diagnosed run gets the same label (so the classifier learns from it)."""
    if category not in RootCause.values:
        raise ValueError(f"unknown root cause {category!r}")
    now = timezone.now()
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident_id)
        before = incident.category
        incident.category, incident.source, incident.confidence = (
            category,
            RootCauseSource.OPERATOR,
            1.0,
        )
        if category != before:
            incident.component, incident.summary = "", OPERATOR_SUMMARY
        incident.labelled_by, incident.labelled_at, incident.updated_at = user, now, now
        incident.save()
        runs = incident.members.exclude(run=None).values_list("run_id", flat=True)
        for diagnosis in RunDiagnosis.objects.select_related("rule").filter(run_id__in=runs):
            _apply_label(diagnosis, category, user, now)
        cause = word(msgs.ROOT_CAUSE, category)
        line = (
            say(msgs.CONFIRMED, cause=cause)
            if category == before
            else say(
                msgs.CORRECTED, cause=cause, before=word(msgs.ROOT_CAUSE_CODE, before or "unknown")
            )
        )
        text, params = stored(say(msgs.WITH_NOTE, text=line, note=note) if note else line)
        IncidentEvent.objects.create(
            incident=incident,
            kind=IncidentEventKind.LABELLED,
            text=text,
            text_params=params,
            user=user,
            at=now,
        )
    return incident


def classifier_retrain(*, min_new_labels: int = 0) -> ClassifierModel | None:
    """Train a new version on the corpus plus every operator label; store it.

    Skipped (None) when fewer than `min_new_labels` labels arrived since the newest
    version (the periodic task passes 1, so an idle portal does not retrain)."""
    newest = ClassifierModel.objects.order_by("-version").first()
    labelled = list(
        RunDiagnosis.objects.exclude(labelled_category="")
        .select_related("run__case__template", "run__cluster")
        .order_by("labelled_at")
    )
    if newest is not None and len(labelled) - newest.labels < min_new_labels:
        return None
    train, held_out = classifier.split(classifier.corpus())
    labels = [
        classifier.Sample(evidence=evidence_of(d.run), category=d.labelled_category)
        for d in labelled
    ]
    pipeline = classifier.train(train + labels)
    score = classifier.accuracy(pipeline, held_out)
    final = classifier.train(train + held_out + labels)  # the stored one learns from all
    return ClassifierModel.objects.create(
        version=(newest.version + 1) if newest else 1,
        samples=len(train) + len(held_out) + len(labels),
        labels=len(labels),
        accuracy=round(score, 4),
        blob=classifier.dumps(final),
    )
