"""Compile the apps' locale .po files to .mo with Babel, for tests (the build does it
with `make messages-compile`). Only stale catalogs are compiled, so it is cheap."""

from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent


def compile_messages(root: Path = ROOT) -> list[Path]:
    """Write every apps/*/locale/*/LC_MESSAGES/django.mo older than its .po; the written."""
    written = []
    for po in sorted(root.glob("apps/*/locale/*/LC_MESSAGES/*.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as source:
            catalog = read_po(source, locale=po.parent.parent.name)
        tmp = mo.with_suffix(".mo.tmp")  # concurrent pytest processes: never a half file
        with tmp.open("wb") as target:
            write_mo(target, catalog, use_fuzzy=False)
        tmp.replace(mo)
        written.append(mo)
    return written


def reset_translations() -> None:
    """Forget catalogs Django loaded before the .mo files existed (as Django's own
    test machinery does when LOCALE_PATHS changes)."""
    from django.conf import settings
    from django.test.signals import setting_changed

    setting_changed.send(
        sender=type(settings), setting="LOCALE_PATHS", value=settings.LOCALE_PATHS, enter=True
    )
