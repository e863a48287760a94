"""Texts written when something happens and read later, in the reader's language.

A worker that writes "resolved by hand by alice" cannot know who reads it: a
dashboard in Chinese, a Slack channel in English. So the writer keeps the message's
identity and parameters (a "spec", a small JSON value) next to the English text:

    note = say(RESOLVED_BY_HAND, user="alice")
    AlertFlip(note=note.english, note_params=note.spec)

and every reader renders it in the active language: `render(flip.note, flip.note_params)`
(rows written before a spec existed read as stored). Messages are registered once per
app in `apps/<app>/said.py` with `message(key, gettext_lazy(...))`; they are found by
autodiscovery, so a reader never has to import the writer's app.

A spec is `{"m": key, "p": {name: value}}`. A value is a plain string or number, another
spec (a message inside a message), `{"v": vocabulary, "c": code}` (a word of ours, e.g.
an alert state: its label in the reader's language) or `{"j": [values], "s": sep}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils import translation
from django.utils.functional import Promise
from django.utils.module_loading import autodiscover_modules

Spec = dict[str, Any]

_MESSAGES: dict[str, Promise] = {}
_VOCABULARIES: dict[str, tuple[Callable[[str], str], bool]] = {}
_discovered = False


def message(key: str, text: Promise) -> str:
    """Register a message ("alerts.flapping") with its gettext_lazy text; named
    placeholders only ("%(user)s"). Returns the key."""
    _MESSAGES[key] = text
    return key


def vocabulary(name: str, choices: Any, *, english_code: bool = False) -> str:
    """Register a word list (a TextChoices) whose codes messages carry as placeholders.
    english_code: English reads the code itself ("firing → ok"), other languages the label."""
    labels = dict(choices.choices)

    def label(code: str) -> str:
        return str(labels.get(code, code))

    _VOCABULARIES[name] = (label, english_code)
    return name


def word(name: str, code: str) -> Spec:
    """A placeholder value that is one of our words: rendered as its label."""
    return {"v": name, "c": code}


def joined(values: list[Any], sep: str = "; ") -> Spec:
    return {"j": list(values), "s": sep}


@dataclass(frozen=True)
class Said:
    """A message with its parameters: `english` for the stored text, `spec` for the params
    column, str() in the active language."""

    spec: Spec

    @property
    def english(self) -> str:
        with translation.override("en"):
            return _value(self.spec)

    def __str__(self) -> str:
        return _value(self.spec)


def say(key: str, **params: Any) -> Said:
    """The message `key` with its parameters (values: see the module's docstring; a Said
    may be passed as a value)."""
    return Said({"m": key, "p": {k: _plain(v) for k, v in params.items()}})


def said_join(parts: list[Said], sep: str = "; ") -> Said:
    """Several messages read as one text ("3 consecutive failed runs; step put took …")."""
    return Said({"j": [p.spec for p in parts], "s": sep})


def stored(value: Said | str) -> tuple[str, Spec | None]:
    """(text, params) to store for a message or an already-written text."""
    if isinstance(value, Said):
        return value.english, value.spec
    return value, None


def render(text: str, spec: Mapping[str, Any] | None) -> str:
    """The stored text in the active language; the text as stored when there is no spec
    (an old row) or the spec names a message this version does not know."""
    if not spec:
        return text
    try:
        return _value(spec)
    except (KeyError, TypeError, ValueError):
        return text


def render_field(obj: Any, field: str) -> str:
    """render(obj.<field>, obj.<field>_params)."""
    return render(getattr(obj, field) or "", getattr(obj, f"{field}_params", None))


def render_items(items: list[Any] | None, field: str = "message") -> list[Any]:
    """Copies of stored dicts (a gate decision's reasons) with `field` in the active
    language from `<field>_params`, which readers do not see."""
    shown = []
    for item in items or []:
        if isinstance(item, dict):
            item = dict(item)
            params = item.pop(f"{field}_params", None)
            item[field] = render(str(item.get(field, "")), params)
        shown.append(item)
    return shown


def render_known(text: str) -> str:
    """A text stored in English that may be one of our marked sentences (a shipped
    diagnosis rule's summary): its translation, else the text as written."""
    return translation.gettext(text) if text else ""  # gettext("") is the catalog header


def _plain(value: Any) -> Any:
    if isinstance(value, Said):
        return value.spec
    if isinstance(value, str | int | float | dict) or value is None:
        return value
    return str(value)


def _discover() -> None:
    global _discovered
    if not _discovered:
        _discovered = True
        autodiscover_modules("said")


def _value(value: Any) -> str:
    if not isinstance(value, Mapping):
        return "" if value is None else str(value)
    if "m" in value:
        if value["m"] not in _MESSAGES:
            _discover()
        text = _MESSAGES[value["m"]]
        # Numbers stay numbers: a plural message picks its form by one.
        params = {
            k: v if isinstance(v, int | float) else _value(v)
            for k, v in (value.get("p") or {}).items()
        }
        return str(text % params) if params else str(text)
    if "v" in value:
        if value["v"] not in _VOCABULARIES:
            _discover()
        label, english_code = _VOCABULARIES[value["v"]]
        code = str(value.get("c", ""))
        if english_code and (translation.get_language() or "en").startswith("en"):
            return code
        return label(code)
    if "j" in value:
        return str(value.get("s", "; ")).join(_value(v) for v in value["j"])
    raise ValueError("not a message spec")
