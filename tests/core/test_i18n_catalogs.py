"""The translation catalogs: complete, placeholders intact, and nothing left out of them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Message
from babel.messages.pofile import read_po

from kubeprobe_site.locale_build import BASE_DIR, catalogs_compile, po_files

# %(name)s / %s / %d ... as Python's %-formatting reads them; %% is a literal.
PERCENT = re.compile(r"%(?:\((\w+)\))?[-#0 +]*\d*(?:\.\d+)?([diouxXeEfFgGcrsa%])")
# The same folders `make messages` leaves out (Makefile MESSAGES_IGNORE).
IGNORE = ["var/*", "tests/*", "bench/*", "deploy/*", "operator/*", "probe_sdk/*", "docs/*"]
IGNORE.append("static/vendor/*")


def placeholders(text: str) -> tuple[set[str], int]:
    """(named placeholders, count of positional ones) of a %-format string."""
    named, positional = set(), 0
    for m in PERCENT.finditer(text):
        if m.group(2) == "%":
            continue
        if m.group(1):
            named.add(m.group(1))
        else:
            positional += 1
    return named, positional


def catalogs() -> list[Path]:
    found = list(po_files())
    assert found, "no .po files found"
    return found


def entries(po: Path) -> list[Message]:
    with po.open("rb") as fh:
        return [m for m in read_po(fh) if m.id]


def problems(po: Path) -> list[str]:
    out = []
    for m in entries(po):
        ids = [m.id] if isinstance(m.id, str) else list(m.id)
        strings = [m.string] if isinstance(m.string, str) else list(m.string)
        where = f"{po.relative_to(BASE_DIR)}: {ids[0]!r}"
        if m.fuzzy:
            out.append(f"{where} is fuzzy")
        if not all(strings):
            out.append(f"{where} is not translated")
            continue
        if "python-format" not in m.flags:
            continue
        # A plural's forms may each drop the count, but never invent a name.
        want_named = set().union(*(placeholders(i)[0] for i in ids))
        want_positional = max(placeholders(i)[1] for i in ids)
        for s in strings:
            named, positional = placeholders(s)
            if len(ids) == 1 and named != want_named:
                out.append(f"{where}: placeholders {sorted(named)} != {sorted(want_named)}")
            elif not named <= want_named:
                out.append(f"{where}: unknown placeholders {sorted(named - want_named)}")
            if positional != want_positional:
                out.append(f"{where}: {positional} positional placeholders, not {want_positional}")
    return out


def test_the_placeholder_check_catches_a_dropped_or_renamed_name() -> None:
    assert placeholders("Run %(run)s took %(ms)d ms, 100%%") == ({"run", "ms"}, 0)
    assert placeholders("%s of %d") == (set(), 2)
    assert placeholders("运行 %(run)s") != placeholders("运行 %(id)s")


@pytest.mark.parametrize("po", catalogs(), ids=lambda p: str(p.relative_to(BASE_DIR)))
def test_every_entry_is_translated_not_fuzzy_and_keeps_its_placeholders(po: Path) -> None:
    assert entries(po), f"{po} is empty"
    assert problems(po) == []


def test_catalogs_compile_with_babel_into_what_django_reads(tmp_path: Path) -> None:
    """The .mo files come from Babel (no GNU msgfmt needed) and Django translates with them."""
    copy = tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES"
    copy.mkdir(parents=True)
    shutil.copy(BASE_DIR / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po", copy)
    assert catalogs_compile(root=tmp_path) == [copy / "django.po"]
    assert catalogs_compile(root=tmp_path) == []  # up to date: nothing rebuilt
    import gettext

    with (copy / "django.mo").open("rb") as fh:
        assert gettext.GNUTranslations(fh).gettext("Overview") == "总览"


def test_makemessages_finds_no_string_missing_from_the_committed_catalogs(tmp_path: Path) -> None:
    """Extract again (as `make messages` does) into a copy: every msgid must already be
    in the committed .po files, so no wrapped string ships untranslated."""
    if shutil.which("xgettext") is None:
        pytest.skip("GNU gettext (xgettext) is not installed; .ci/run installs it")
    tree = tmp_path / "tree"
    skip = shutil.ignore_patterns("__pycache__", "*.mo", "*.pyc")
    for name in ("apps", "kubeprobe_site", "templates", "static", "locale"):
        shutil.copytree(BASE_DIR / name, tree / name, ignore=skip)
    shutil.copy(BASE_DIR / "manage.py", tree)
    env = {**os.environ, "KUBEPROBE_DEBUG": "1", "KUBEPROBE_VAR_DIR": str(tmp_path / "var")}
    ignore = [arg for pattern in IGNORE for arg in ("--ignore", pattern)]
    for domain in ("django", "djangojs"):
        subprocess.run(
            [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "-d", domain, *ignore],
            cwd=tree,
            env=env,
            check=True,
            capture_output=True,
            timeout=240,
        )
    missing = []
    for fresh in po_files(root=tree):
        committed = BASE_DIR / fresh.relative_to(tree)
        known = (
            {m.id if isinstance(m.id, str) else m.id[0] for m in entries(committed)}
            if committed.exists()
            else set()
        )
        for m in entries(fresh):
            msgid = m.id if isinstance(m.id, str) else m.id[0]
            if msgid not in known:
                missing.append(f"{committed.relative_to(BASE_DIR)}: {msgid!r}")
    assert missing == [], "run `make messages` and translate:\n" + "\n".join(missing)
