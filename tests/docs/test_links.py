"""Every relative link and #anchor in README.md and docs/*.md resolves.

Anchors follow GitHub's rule (lower case, punctuation dropped, spaces to
hyphens, "-1", "-2" for repeats), so a link that works here works on GitHub.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~)")
# [text](target) and ![alt](target); the target ends at whitespace or ")".
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


def prose(text: str) -> str:
    """The page without fenced code blocks and inline code, where links are not links."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(kept)


def slug(heading: str) -> str:
    text = re.sub(r"`|\*\*|__", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text().splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        if fenced or not line.startswith("#"):
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    found.update(re.findall(r'<a (?:id|name)="([^"]+)"', page.read_text()))
    return found


def links(page: Path) -> list[str]:
    text = prose(page.read_text())
    return LINK.findall(text) + REFERENCE.findall(text)


def test_the_pages_exist_and_have_links() -> None:
    names = {page.name for page in PAGES}
    assert {"README.md", "concepts.md", "development.md", "benchmarks.md"} <= names
    assert sum(len(links(page)) for page in PAGES) > 50


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = unquote(target).partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(root):
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(root)}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_checker_finds_a_broken_file_an_anchor_and_a_way_out(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/other.md").write_text("# Other\n\n## Real part\n")
    page = tmp_path / "docs/page.md"
    page.write_text(
        "# Page\n\nSee [ok](other.md#real-part), [self](#page), [gone](missing.md),\n"
        "[no part](other.md#fake-part), [away](../../shared/DESIGN.md) and\n"
        "`[code](ignored.md)`.\n\n```\n[fenced](ignored.md)\n```\n"
    )
    assert broken_links(page, root=tmp_path) == [
        "missing.md: no such file",
        "other.md#fake-part: no heading #fake-part in docs/other.md",
        "../../shared/DESIGN.md: outside the repository",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_nothing_points_outside_the_repository(page: Path) -> None:
    assert "../shared/" not in page.read_text()
    for target in links(page):
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
            path = unquote(target).partition("#")[0]
            assert not path or (page.parent / path).resolve().is_relative_to(ROOT), target


def test_the_anchor_rule_is_githubs() -> None:
    assert slug("Fan-out: 200,000 runs per tick") == "fan-out-200000-runs-per-tick"
    assert slug("Etcd black-box (`etcd`)") == "etcd-black-box-etcd"
    assert slug("Scale and sizing") == "scale-and-sizing"
