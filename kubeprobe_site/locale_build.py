"""Compile the committed .po catalogs into the .mo files Django reads.

Django's ``compilemessages`` needs GNU ``msgfmt``; a fresh machine with only
Python does not have it, so Babel compiles instead. Only catalogs whose .mo is
missing or older than the .po are rebuilt. Fuzzy entries are left out, as
msgfmt does.

    python -m kubeprobe_site.locale_build [ROOT]
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

BASE_DIR = Path(__file__).resolve().parent.parent
# Where catalogs live: the root locale/ (templates, JS) and each app's own.
PO_GLOBS = ("locale/*/LC_MESSAGES/*.po", "apps/*/locale/*/LC_MESSAGES/*.po")


def po_files(*, root: Path = BASE_DIR) -> Iterator[Path]:
    """Every committed catalog under ``root``."""
    for pattern in PO_GLOBS:
        yield from sorted(root.glob(pattern))


def catalog_compile(*, po: Path, force: bool = False) -> bool:
    """Write ``po``'s .mo next to it; False when it was already up to date."""
    mo = po.with_suffix(".mo")
    if not force and mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        return False
    with po.open("rb") as source:
        catalog = read_po(source, abort_invalid=True)
    tmp = mo.with_suffix(".mo.tmp")
    with tmp.open("wb") as out:
        write_mo(out, catalog, use_fuzzy=False)
    # Atomic, so a process reading catalogs never sees half a file.
    tmp.replace(mo)
    return True


def catalogs_compile(*, root: Path = BASE_DIR, force: bool = False) -> list[Path]:
    """Compile every stale catalog under ``root``; returns the ones written."""
    return [po for po in po_files(root=root) if catalog_compile(po=po, force=force)]


def main(argv: list[str]) -> int:
    root = Path(argv[0]).resolve() if argv else BASE_DIR
    written = catalogs_compile(root=root)
    for po in written:
        print(f"compiled {po.relative_to(root).with_suffix('.mo')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
