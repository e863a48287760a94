"""Database expressions shared by apps."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Func, TextField


class JSONKeyText(Func):
    """The text at one key of a JSON object column, the key always read as a key.

    Django's KeyTextTransform reads an all-digit key as an array index: `{"1": "one"}`
    is not found by "1", and a key past bigint (`99999999999999999999999`) fails in
    the database. Label keys may be all digits, so labels use this one. Compared as
    plain text (its lookups are TextField's), on Postgres and SQLite alike.
    """

    output_field = TextField()

    def __init__(self, key: str, field: str) -> None:
        super().__init__(field)
        self.key = str(key)

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        lhs, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            return f"({lhs} ->> %s)", (*params, self.key)
        # SQLite (and MySQL): a JSON path with the key quoted, so it is never an index.
        return f"JSON_EXTRACT({lhs}, %s)", (*params, "$." + json.dumps(self.key))
