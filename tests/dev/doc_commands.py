"""The shell commands of the user docs, as tests/dev/test_doc_commands.py runs them.

A fenced ```sh (or bash, shell) block is a script: every command must exit 0.
A ```console block is a session: a line starting with `$ ` is a command
(continued by a trailing backslash), the lines after it are its expected
output, matched in order against what it printed, `…` standing for anything.
An HTML comment on the line before a block changes that:
`<!-- docs-test: skip (why) -->` leaves it out (it must say why), and
`<!-- docs-test: exit=N -->` expects the block's last command to exit N.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# In this order, as a newcomer would follow them: the README, then the pages
# whose examples continue from it (both say so).
PAGES = ["README.md", "docs/using.md", "docs/alerting.md"]
SHELLS = {"sh", "bash", "shell", "console"}
MARKER = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->")


@dataclass
class Command:
    """One thing to run: a whole sh block, or one `$` command of a console block."""

    page: str
    line: int
    script: str
    expected: list[str] = field(default_factory=list)
    exit_code: int = 0

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Block:
    page: str
    line: int
    language: str
    body: list[str]
    marker: str


def blocks(page: str) -> list[Block]:
    """The shell blocks of a page, with the docs-test marker before each (or "")."""
    found: list[Block] = []
    lines = (ROOT / page).read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^(\s*)```(\w*)\s*$", lines[index])
        if not opening:
            index += 1
            continue
        indent, language = opening.groups()
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        previous = next((ln for ln in reversed(lines[:index]) if ln.strip()), "")
        marker = MARKER.search(previous)
        if language in SHELLS:
            body = [
                ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[index + 1 : end]
            ]
            found.append(Block(page, index + 1, language, body, marker.group(1) if marker else ""))
        index = end + 1
    return found


def commands(pages: list[str] = PAGES) -> list[Command]:
    """Everything to run, in order."""
    result: list[Command] = []
    for page in pages:
        for block in blocks(page):
            if block.marker.startswith("skip"):
                continue
            expected_exit = re.search(r"exit=(\d+)", block.marker)
            exit_code = int(expected_exit.group(1)) if expected_exit else 0
            if block.language != "console":
                result.append(Command(page, block.line, "\n".join(block.body), exit_code=exit_code))
                continue
            current: Command | None = None
            continuing = False
            for offset, text in enumerate(block.body, start=1):
                if continuing and current is not None:
                    current.script += "\n" + text
                elif text.startswith("$ "):
                    current = Command(page, block.line + offset, text[2:], exit_code=exit_code)
                    result.append(current)
                elif current is not None and text.strip():
                    current.expected.append(text)
                continuing = text.rstrip().endswith("\\")
    return result


def skip_markers(pages: list[str] = PAGES) -> list[tuple[str, int, str]]:
    return [(b.page, b.line, b.marker) for page in pages for b in blocks(page) if b.marker]


def output_matches(expected: list[str], output: str) -> bool:
    """Every expected line matches a line of the output, in order; `…` is a wildcard."""
    actual = output.splitlines()
    position = 0
    for line in expected:
        if line.strip() == "…":
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in line.split("…")) + r"\s*")
        while position < len(actual) and not pattern.fullmatch(actual[position]):
            position += 1
        if position == len(actual):
            return False
        position += 1
    return True


def as_script(commands: list[Command], outputs: Path) -> str:
    """One bash script running the commands in one shell (exports and `. activate`
    carry over, as in a terminal); each command's output and exit status go to files."""
    parts = ["set -o pipefail"]
    for number, command in enumerate(commands):
        out = shlex.quote(str(outputs / f"{number}.out"))
        status = shlex.quote(str(outputs / f"{number}.rc"))
        source = outputs / f"{number}.sh"
        # Each command stops at its first failing line, like `set -e` in a script;
        # a block expected to fail runs to its end and is judged by its last line.
        prelude = "set -e\n" if command.exit_code == 0 else "set +e\n"
        source.write_text(prelude + command.script + "\n")
        parts.append(f"echo {number} > {shlex.quote(str(outputs / 'current'))}")
        parts.append(f"source {shlex.quote(str(source))} > {out} 2>&1; echo $? > {status}; set +e")
    return "\n".join(parts) + "\n"
