"""`POST /api/v1/resident/samples`: batched samples from resident runners.

A plain Django view (no DRF): it authenticates by the probe's own token, is
CSRF-exempt and reads at most 1 MiB. The protocol is in docs/resident-center.md.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.resident import services
from apps.resident.samples import MAX_BODY_BYTES, SampleRejected


def _refuse(status: int, detail: dict[str, object]) -> JsonResponse:
    response = JsonResponse(detail, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="kubeprobe-resident"'
    return response


@csrf_exempt
@require_POST
def samples_view(request: HttpRequest) -> HttpResponse:
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _refuse(413, {"detail": "The batch is over 1 MiB; send fewer windows."})
    scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if request.content_type and not request.content_type.startswith("application/json"):
        return _refuse(415, {"detail": "Content-Type must be application/json."})
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _refuse(413, {"detail": "The batch is over 1 MiB; send fewer windows."})
    try:
        answer = services.resident_samples_ingest(token=token, body=body)
    except SampleRejected as exc:
        return _refuse(exc.status, exc.detail)
    status = 200 if answer.get("duplicate") else 202
    return HttpResponse(json.dumps(answer), status=status, content_type="application/json")
