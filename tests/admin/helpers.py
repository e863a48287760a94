"""Helpers for driving Django admin pages the way a browser does."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from django.contrib.messages import get_messages
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext

_SKIPPED_INPUT_TYPES = {"submit", "button", "image", "reset", "file"}


class _AdminFormParser(HTMLParser):
    """Collects what a browser would submit from the admin's model form."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.data: dict[str, list[str]] = {}
        self.visible: set[str] = set()
        self._in_form = False
        self._select: str | None = None
        self._select_first: str | None = None
        self._select_multiple = False
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        # The admin's change form is <form id="<model_name>_form">; the logout
        # form in the header is id="logout-form".
        if tag == "form" and (a.get("id") or "").endswith("_form"):
            self._in_form = True
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind in _SKIPPED_INPUT_TYPES:
                return
            if kind != "hidden":
                self.visible.add(name)
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.data.setdefault(name, []).append(a.get("value") or "on")
                return
            self.data.setdefault(name, []).append(a.get("value") or "")
        elif tag == "select" and name:
            self._select = name
            self.visible.add(name)
            self._select_first = None
            self._select_multiple = "multiple" in a
            self.data.setdefault(name, [])
        elif tag == "option" and self._select is not None:
            value = a.get("value") or ""
            if self._select_first is None:
                self._select_first = value
            if "selected" in a:
                self.data[self._select].append(value)
        elif tag == "textarea" and name:
            self._textarea = name
            self.visible.add(name)
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select is not None:
            if not self.data[self._select] and not self._select_multiple:
                self.data[self._select].append(self._select_first or "")
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            text = "".join(self._text)
            # HTML drops one newline right after <textarea>; Django emits it.
            self.data[self._textarea] = [text.removeprefix("\r\n").removeprefix("\n")]
            self._textarea = None
        elif tag == "form":
            self._in_form = False

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)


def _parse(response: HttpResponse) -> _AdminFormParser:
    assert response.status_code == 200, response.status_code
    parser = _AdminFormParser()
    parser.feed(response.content.decode())
    return parser


def editable_fields(response: HttpResponse) -> set[str]:
    """Names of the inputs a user can edit (not hidden) on an admin page's form."""
    return _parse(response).visible


def form_data(response: HttpResponse) -> dict[str, Any]:
    """The POST data a browser would send from an admin add/change page."""
    parser = _parse(response)
    assert parser.data, "no admin form found on the page"
    data: dict[str, Any] = {
        name: values[0] if len(values) == 1 else values for name, values in parser.data.items()
    }
    data.pop("csrfmiddlewaretoken", None)
    return data


def messages_of(response: HttpResponse) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def form_errors(response: HttpResponse) -> dict[str, list[str]]:
    """Errors of the admin's main form on a re-rendered add/change page."""
    assert response.status_code == 200, response.status_code
    form = response.context["adminform"].form
    return {field: list(errors) for field, errors in form.errors.items()}


def count_queries(client: Client, url: str) -> tuple[HttpResponse, int, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    return response, len(ctx.captured_queries), [q["sql"] for q in ctx.captured_queries]
