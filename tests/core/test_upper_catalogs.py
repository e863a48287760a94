"""The zh_Hans catalogs of alerts, resident, diagnosis, actions and gating: every entry
translated, none fuzzy, the same %(name)s placeholders as its English, and in step
with the code (a wrapped string nobody translated fails here)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
APPS = ("alerts", "resident", "diagnosis", "actions", "gating", "postrun")
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdr]")


def catalog(app: str):  # type: ignore[no-untyped-def]
    with (ROOT / "apps" / app / "locale/zh_Hans/LC_MESSAGES/django.po").open("rb") as source:
        return read_po(source, locale="zh_Hans")


@pytest.mark.parametrize("app", APPS)
def test_every_entry_is_translated_and_none_is_fuzzy(app: str) -> None:
    entries = [m for m in catalog(app) if m.id]
    assert entries, f"apps/{app} has an empty catalog"
    untranslated = [
        m.id for m in entries if not all(m.string if isinstance(m.string, tuple) else [m.string])
    ]
    assert untranslated == []
    assert [m.id for m in entries if m.fuzzy] == []
    for m in entries:
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == wanted, (m.id, text)


@pytest.mark.parametrize("app", APPS)
def test_the_catalog_has_every_string_of_the_code(app: str, tmp_path: Path) -> None:
    """xgettext over the app's Python finds no msgid the catalog lacks."""
    sources = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "apps" / app).rglob("*.py")
        if "migrations" not in p.parts
    )
    pot = tmp_path / "app.pot"
    keywords = ["gettext_noop", "gettext_lazy", "ngettext_lazy:1,2", "pgettext:1c,2"]
    keywords += ["pgettext_lazy:1c,2", "npgettext:1c,2,3", "npgettext_lazy:1c,2,3"]
    subprocess.run(
        ["xgettext", "--language=Python", "--from-code=UTF-8", "-o", str(pot)]
        + [f"--keyword={k}" for k in keywords]
        + sources,
        cwd=ROOT,
        check=True,
    )
    # xgettext's template header has placeholders Babel cannot parse.
    header = {"charset=CHARSET": "charset=UTF-8", "nplurals=INTEGER; plural=EXPRESSION;": ""}
    text = pot.read_text()
    for placeholder, value in header.items():
        text = text.replace(placeholder, value)
    pot.write_text(text)
    with pot.open("rb") as source:
        found = {
            (m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in read_po(source) if m.id
        }
    known = {(m.context, m.id if isinstance(m.id, str) else m.id[0]) for m in catalog(app) if m.id}
    assert found, "xgettext found no strings"
    assert sorted(found - known, key=str) == []
