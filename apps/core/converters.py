"""URL converters shared by the pages."""

from __future__ import annotations


class NameConverter:
    """An object's name in a page URL: any text but `/` and NUL. A NUL character can
    never be in a stored name (and Postgres cannot compare text holding one), so such
    URLs match no route and answer 404 instead of reaching the database."""

    regex = "[^/\x00]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
