"""Operators' labels (API, dashboard form, incident) and the learned classifier:
trained on corpus + labels, stored versioned, consulted only when rules are unsure."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client, override_settings
from rest_framework.test import APIClient

from apps.diagnosis import services
from apps.diagnosis.classifier import corpus
from apps.diagnosis.models import ClassifierModel, DiagnosisRule, Incident, RunDiagnosis
from apps.diagnosis.tasks import retrain_classifier
from tests.diagnosis.helpers import case_of, failed_step, finish
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator() -> User:
    user = User.objects.create_user("op", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    return user


@pytest.fixture
def viewer() -> User:
    user = User.objects.create_user("view", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    return user


def test_the_corpus_has_300_examples_over_every_category() -> None:
    samples = corpus()
    assert len(samples) >= 300
    from apps.runs.models import RootCause

    assert {s.category for s in samples} == set(RootCause.values)


def test_an_operator_corrects_a_run_over_the_api_and_the_alert_follows(
    operator: User, viewer: User
) -> None:
    case, cluster = case_of("lifecycle", "pod-lifecycle"), ClusterFactory()
    run, _ = finish(
        case, cluster, failed_step("create", "HTTP 503: the server is currently unable")
    )
    assert run.root_cause == "apiserver"
    api = APIClient()
    api.force_authenticate(viewer)
    url = f"/api/v1/diagnoses/{run.pk}/root-cause/"
    assert api.post(url, {"category": "etcd"}, format="json").status_code == 403
    api.force_authenticate(operator)
    bad = api.post(url, {"category": "gremlins"}, format="json")
    assert bad.status_code == 400 and "category" in bad.json()
    assert api.post("/api/v1/diagnoses/999999/root-cause/", {"category": "etcd"}).status_code == 404
    answer = api.post(url, {"category": "etcd"}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["labelled_category"] == "etcd" and answer.json()["source"] == "operator"
    run.refresh_from_db()
    assert (run.root_cause, run.root_cause_source) == ("etcd", "operator")
    # A succeeded run has nothing to label: 409 naming why.
    ok_run, _ = finish(case, cluster, {"ok": True, "steps": []})
    conflict = api.post(f"/api/v1/diagnoses/{ok_run.pk}/root-cause/", {"category": "etcd"})
    assert conflict.status_code == 409 and "did not fail" in conflict.json()["detail"]


def test_dashboard_run_form_labels_the_run(operator: User) -> None:
    case, cluster = case_of("lifecycle", "pod-lifecycle"), ClusterFactory()
    run, _ = finish(case, cluster, failed_step("ready", "not reached after 120 s"))
    client = Client()
    client.force_login(operator)
    page = client.get(f"/dashboard/runs/{run.pk}/").content.decode()
    assert f'action="/dashboard/runs/{run.pk}/label/"' in page and "Diagnosis:" in page
    client.post(f"/dashboard/runs/{run.pk}/label/", {"category": "runtime"})
    assert RunDiagnosis.objects.get(run=run).labelled_category == "runtime"


def test_incident_label_reaches_its_runs_and_timeline_and_page(operator: User) -> None:
    case = case_of("lifecycle", "pod-lifecycle")
    runs = [
        finish(case, ClusterFactory(), failed_step("running", "ImagePullBackOff x"))[0]
        for _ in range(3)
    ]
    incident = Incident.objects.get()
    api = APIClient()
    api.force_authenticate(operator)
    listed = api.get("/api/v1/incidents/?state=open").json()["results"]
    assert [i["id"] for i in listed] == [incident.pk] and len(listed[0]["members"]) == 3
    answer = api.post(
        f"/api/v1/incidents/{incident.pk}/root-cause/",
        {"category": "network", "note": "registry reachable; the node egress was down"},
        format="json",
    )
    assert answer.status_code == 200
    assert answer.json()["category"] == "network" and answer.json()["source"] == "operator"
    assert "corrected from image" in answer.json()["timeline"][-1]["text"]
    assert {RunDiagnosis.objects.get(run=r).labelled_category for r in runs} == {"network"}
    client = Client()
    client.force_login(operator)
    page = client.get(f"/dashboard/incidents/{incident.pk}/").content.decode()
    assert "CNI / network" in page and "corrected from image" in page
    listing = client.get("/dashboard/incidents/").content.decode()
    assert incident.title in listing
    assert client.get("/dashboard/incidents/?state=nonsense").status_code == 200


def test_classifier_is_trained_versioned_and_consulted_only_when_rules_are_unsure() -> None:
    assert retrain_classifier(force=True) == 1
    model = ClassifierModel.objects.get(version=1)
    assert model.samples >= 300 and model.labels == 0 and model.accuracy > 0.8
    assert retrain_classifier() is None  # nothing new labelled: no new version
    # No rule matches this message; the classifier names it, marked learned.
    case, cluster = case_of("lifecycle", "pod-lifecycle"), ClusterFactory()
    run, _ = finish(
        case,
        cluster,
        failed_step("ready", "pod-to-pod traffic lost between nodes after the overlay changed"),
    )
    diagnosis = RunDiagnosis.objects.get(run=run)
    assert diagnosis.rule is None and diagnosis.source == "learned"
    assert diagnosis.learned_category == run.root_cause != ""
    assert run.root_cause_source == "learned" and "classifier" in run.root_cause_summary
    # A sure rule is not second-guessed: no learned suggestion recorded.
    run, _ = finish(case, cluster, failed_step("create", "HTTP 401: Unauthorized"))
    sure = RunDiagnosis.objects.get(run=run)
    assert sure.source == "rule" and sure.learned_category == ""
    # A label makes the next periodic retrain produce version 2, counting it.
    services.run_label(run_id=run.pk, category="certificates")
    assert retrain_classifier() == 2
    assert ClassifierModel.objects.get(version=2).labels == 1


@override_settings(KUBEPROBE_DIAGNOSIS_MIN_CONFIDENCE=0.7)
def test_without_any_rule_the_classifier_decides() -> None:
    retrain_classifier(force=True)
    DiagnosisRule.objects.update(enabled=False)
    case, cluster = case_of("lifecycle", "pod-lifecycle"), ClusterFactory()
    run, _ = finish(
        case,
        cluster,
        failed_step("running", 'ImagePullBackOff Back-off pulling image "r.example.com/x:1"'),
    )
    assert (run.root_cause, run.root_cause_source) == ("image", "learned")
