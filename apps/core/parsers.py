"""Request parsers of the API: the DRF ones, refusing NUL characters anywhere.

Postgres cannot store NUL in text or jsonb, and a name containing one can never match
a stored name: refused here, once, with a 400 naming where it was, instead of a 500
from whichever field or lookup the value reaches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http import QueryDict
from django.utils.translation import gettext_lazy as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError

NUL = "\x00"


def nul_paths(value: Any, path: str = "") -> Iterator[str]:
    """The paths (`a.b[0]`) of the keys and strings in `value` that contain NUL."""
    if isinstance(value, str):
        if NUL in value:
            yield path or "(body)"
    elif isinstance(value, dict):
        for key, item in value.items():
            key_path = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and NUL in key:
                yield key_path
            else:
                yield from nul_paths(item, key_path)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from nul_paths(item, f"{path}[{index}]")


def refuse_nul(data: Any) -> Any:
    if isinstance(data, QueryDict):
        found = [key for key, values in data.lists() if any(nul_paths([key, *values]))]
    else:
        found = list(nul_paths(data))
    if found:
        named = ", ".join(path.replace(NUL, "\\u0000") for path in found[:10])
        raise ParseError(
            _("NUL characters (\\u0000) are not allowed: %(named)s.") % {"named": named}
        )
    return data


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        return refuse_nul(super().parse(stream, media_type, parser_context))


class FormParser(parsers.FormParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        return refuse_nul(super().parse(stream, media_type, parser_context))


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        result = super().parse(stream, media_type, parser_context)
        refuse_nul(result.data)
        return result
