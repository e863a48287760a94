"""Middleware of our own."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from apps.core.logcontext import log_context_begin, request_id_from


class SyncChain:
    """A sync-only, do-nothing middleware placed last in MIDDLEWARE.

    Under ASGI Django runs each middleware in the mode of the handler below
    it. With this at the bottom the whole stack runs synchronously in one
    worker thread per request, instead of hopping between the event loop and
    threads for every process_request/process_response (about 30 hops, ~3 ms,
    per request on this stack).
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)


class RequestId:
    """Gives the request an id for its log lines (apps/core/logcontext.py): the
    client's (or the ingress's) X-Request-ID when it looks like one, which the
    answer then carries back, else a new one for the logs only."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.META.get("HTTP_X_REQUEST_ID")
        request_id = request_id_from(given)
        log_context_begin(request_id=request_id)
        response = self.get_response(request)
        if request_id == given:
            response["X-Request-ID"] = request_id
        return response


class RefuseNul:
    """A NUL character in the URL's path or query is a 400, for every page and API route.

    Postgres cannot compare text with NUL in it, so a name-addressed lookup
    (`/api/v1/clusters/a%00b/`, `/dashboard/cases/a%00b/`) would fail as a 500; no
    stored name can contain one, and no parameter needs one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path_info:
            return _bad_request(request, "NUL characters (%00) are not allowed in the URL.")
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                name = key.replace("\x00", "%00")
                return _bad_request(request, f"NUL characters (%00) are not allowed: {name}.")
        return self.get_response(request)


def _bad_request(request: HttpRequest, message: str) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": message}, status=400)
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
