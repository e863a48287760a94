"""The two report endpoints over HTTP: reading the body, and each protocol's answers.

`POST /api/v1/runs/<id>/report` speaks KubeProbe's protocol (JSON answers);
`POST /check` and `POST /api/v1/kuberhealthy/check` speak Kuberhealthy v3's
(plain text, its status codes). Both Django views and the WSGI fast path
(fastpath.py) ask ``run_report_answer`` / ``kuberhealthy_answer`` here, so
the answers are the same whichever serves them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.views import APIView

from apps.core.logcontext import log_context_update
from apps.runs.api.serializers import ReportSerializer
from apps.runs.metrics import report_observe
from apps.runs.reporting.accept import (
    Refusal,
    ReportRefused,
    run_report,
    run_report_kuberhealthy,
    too_large,
)

MAX_RUN_ID = 2**63 - 1  # bigint
JSON = "application/json"
TEXT = "text/plain"

# The HTTP answer to each refusal, per protocol. Kuberhealthy answers 400 for
# a missing, unknown or spent uuid, as its own server does.
KUBEPROBE_STATUS = {
    Refusal.TOO_LARGE: 413,
    Refusal.INVALID: 400,
    Refusal.NO_RUN: 404,
    Refusal.BAD_TOKEN: 401,
    Refusal.FINISHED: 409,
    Refusal.PAST_DEADLINE: 410,
    Refusal.UNAVAILABLE: 503,
}
KUBERHEALTHY_STATUS = {**KUBEPROBE_STATUS, Refusal.NO_RUN: 400, Refusal.FINISHED: 400}


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    @classmethod
    def json(cls, status: int, payload: Any) -> Answer:
        # Separators as json.dumps' (and JsonResponse's) defaults.
        return cls(status, JSON, json.dumps(payload).encode())

    def response(self) -> HttpResponse:
        return HttpResponse(self.body, status=self.status, content_type=self.content_type)


Read = Callable[[int], bytes]


def read_body(meta: Mapping[str, Any], read: Read) -> bytes:
    """The body, at most one byte over the report limit (which the protocols check).

    A chunked body has no Content-Length: Django reads it as empty, so it is
    read from the server's own de-chunked stream, which gunicorn marks with
    wsgi.input_terminated (PEP 3333 leaves it to the server).
    """
    limit = settings.KUBEPROBE_MAX_REPORT_BYTES
    declared = meta.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise too_large()  # before reading it whole
    if not declared and meta.get("wsgi.input_terminated"):
        return bytes(meta["wsgi.input"].read(limit + 1))
    return read(limit + 1)


def _bearer(meta: Mapping[str, Any]) -> str:
    scheme, _, token = meta.get("HTTP_AUTHORIZATION", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def run_report_answer(run_id: int, meta: Mapping[str, Any], read: Read) -> Answer:
    """Answer `POST /api/v1/runs/<run_id>/report`; meta is the WSGI environ (request.META).
    Counted and timed in kubeprobe_reports_total / kubeprobe_report_duration_seconds."""
    started = time.perf_counter()
    log_context_update(run_id=run_id)  # until the request ends: Django logs refusals after
    answer = _run_report_answer(run_id, meta, read)
    report_observe("kubeprobe", answer.status, started)
    return answer


def _run_report_answer(run_id: int, meta: Mapping[str, Any], read: Read) -> Answer:
    if run_id > MAX_RUN_ID:
        return Answer.json(404, {"detail": f"no run {run_id}"})
    try:
        state = run_report(run_id=run_id, token=_bearer(meta), body=read_body(meta, read))
    except ReportRefused as exc:
        detail = exc.detail if isinstance(exc.detail, dict) else {"detail": exc.detail}
        return Answer.json(KUBEPROBE_STATUS[exc.reason], detail)
    return Answer.json(200, {"id": run_id, "state": state})


def kuberhealthy_answer(meta: Mapping[str, Any], read: Read) -> Answer:
    """Answer a Kuberhealthy v3 check client (plain text); counted and timed as reports."""
    started = time.perf_counter()
    answer = _kuberhealthy_answer(meta, read)
    report_observe("kuberhealthy", answer.status, started)
    return answer


def _kuberhealthy_answer(meta: Mapping[str, Any], read: Read) -> Answer:
    if not meta.get("CONTENT_TYPE", "").startswith("application/json"):
        return Answer(415, TEXT, b"")
    try:
        run_report_kuberhealthy(
            run_uuid=meta.get("HTTP_KH_RUN_UUID", ""), body=read_body(meta, read)
        )
    except ReportRefused as exc:
        return Answer(KUBERHEALTHY_STATUS[exc.reason], TEXT, str(exc.detail).encode())
    return Answer(200, TEXT, b"")


class _PlainPost(APIView):
    """An APIView for the schema only: requests skip DRF's request wrapping,
    authentication and content negotiation, which this hot path does not need."""

    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    throttle_classes: list[Any] = []

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        if request.method != "POST":
            response = JsonResponse(
                {"detail": f'Method "{request.method}" not allowed.'}, status=405
            )
            response["Allow"] = "POST"
            return response
        return self.post(request, *args, **kwargs)  # type: ignore[attr-defined,no-any-return]


class RunReportView(_PlainPost):
    """A probe reports its result: `Authorization: Bearer <KUBEPROBE_TOKEN>`, once per run.

    200 stored · 400 invalid body (the field is named) · 401 bad token · 404 unknown run ·
    409 already finished (the first result stays) · 410 past the deadline · 413 over 256 KiB.
    """

    @extend_schema(
        request=ReportSerializer,
        responses={
            200: inline_serializer(
                "ReportStored", {"id": serializers.IntegerField(), "state": serializers.CharField()}
            ),
            400: OpenApiResponse(description="Invalid body; the offending fields are named."),
            401: OpenApiResponse(description="Missing or wrong run token."),
            404: OpenApiResponse(description="No such run."),
            409: OpenApiResponse(description="The run already finished."),
            410: OpenApiResponse(description="The run is past its deadline."),
            413: OpenApiResponse(description="Body over 256 KiB."),
            503: OpenApiResponse(description="The database could not store it now; retry."),
        },
        auth=[],
    )
    def post(self, request: HttpRequest, run_id: int) -> HttpResponse:
        return run_report_answer(run_id, request.META, request.read).response()


class KuberhealthyReportView(_PlainPost):
    """Kuberhealthy v3 check clients report here (`KH_REPORTING_URL`), unchanged.

    Served at `/check` (Kuberhealthy's Go client accepts no other path) and at
    `/api/v1/kuberhealthy/check`. The `kh-run-uuid` header names the run.
    Answers as Kuberhealthy does: 200 stored; 400 missing/unknown/used uuid or
    bad body; 410 past the deadline; 415 not JSON.
    """

    @extend_schema(
        request=inline_serializer(
            "KuberhealthyReport",
            {
                "ok": serializers.BooleanField(),
                "errors": serializers.ListField(child=serializers.CharField()),
            },
        ),
        responses={200: None, 400: None, 410: None, 413: None, 415: None, 503: None},
        auth=[],
    )
    def post(self, request: HttpRequest) -> HttpResponse:
        return kuberhealthy_answer(request.META, request.read).response()
