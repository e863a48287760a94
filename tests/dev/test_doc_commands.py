"""Every shell command of the README (and of the docs pages that continue its
tour) works as written after `make run`.

The commands are read from the pages themselves (tests/dev/doc_commands.py
says how), not copied here, and run in order in one shell in the quick
start's tree, with nothing configured but what `make run` wrote. The only
change made to them: the docs' port 8000 becomes the port this quick start
was given, so the test can run beside anything else on the machine.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.dev.doc_commands import (
    PAGES,
    ROOT,
    Command,
    as_script,
    blocks,
    commands,
    output_matches,
    skip_markers,
)
from tests.dev.test_quickstart import (  # noqa: F401 (quickstart is a fixture)
    VENV,
    bare_env,
    quickstart,
    succeeded_runs,
)
from tests.utils import wait_for

# Names the quick start does not create (the README used them once, and answered 400).
FOREIGN_NAMES = ("prod-1", "etcd-meta", "alerts/42/")


def test_the_pages_have_runnable_commands_and_say_why_others_do_not_run() -> None:
    listed = commands()
    assert len(listed) >= 10
    assert {command.page for command in listed} == set(PAGES)
    for page, line, marker in skip_markers():
        assert marker.startswith(("skip (", "exit=")), f"{page}:{line}: {marker!r}"
    for command in listed:
        assert not any(name in command.script for name in FOREIGN_NAMES), command.where
    # The README's test command is the one CI runs (.ci/run ends with it).
    readme = blocks("README.md")
    assert any(b.body == ["make test"] and b.marker.startswith("skip (") for b in readme)
    assert (ROOT / ".ci/run").read_text().rstrip().endswith("make test")


def test_console_blocks_split_into_commands_with_expected_output() -> None:
    console = [c for c in commands() if c.expected]
    assert console, "no console block with expected output"
    assert output_matches(
        ["Run …: x on local", "…", "Run … succeeded in … ms"],
        "Run 5: x on local\n  state: running\nRun 5 succeeded in 12 ms\n",
    )
    assert not output_matches(["Run … succeeded in … ms"], "Run 5 failed in 12 ms\n")
    assert not output_matches(["b", "a"], "a\nb\n")  # in order


def failure(command: Command, number: int, outputs: Path, what: str) -> str:
    out = outputs / f"{number}.out"
    printed = out.read_text()[-3000:] if out.exists() else "(nothing)"
    return f"{command.where}: {what}\n$ {command.script}\n{printed}"


@pytest.mark.skipif(shutil.which("etcd") is None, reason="the tour stops the quick start's etcd")
@pytest.mark.skipif(shutil.which("curl") is None, reason="the docs call the API with curl")
def test_every_command_of_the_docs_works_after_make_run(
    quickstart: tuple[subprocess.Popen[bytes], Path, Path, int, int],  # noqa: F811
    tmp_path: Path,
) -> None:
    process, tree, log_path, port, _ = quickstart
    wait_for(
        lambda: succeeded_runs(tree / "var/kubeprobe.sqlite3") > 0 or process.poll() is not None,
        timeout=300,
        interval=1,
        what="the first succeeded demo run",
    )
    assert process.poll() is None, log_path.read_text()
    # What `make install` would have made in a fresh clone: the docs activate .venv.
    (tree / ".venv").symlink_to(VENV)

    listed = commands()
    for command in listed:
        command.script = command.script.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    script = outputs / "docs.sh"
    script.write_text(as_script(listed, outputs))
    finished = subprocess.run(
        ["bash", str(script)],
        cwd=tree,
        env=bare_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )

    for number, command in enumerate(listed):
        status = outputs / f"{number}.rc"
        assert status.exists(), failure(
            command, number, outputs, f"stopped the shell (exit {finished.returncode})"
        )
        code = int(status.read_text())
        assert code == command.exit_code, failure(
            command, number, outputs, f"exit {code}, the docs say {command.exit_code}"
        )
        if command.expected:
            printed = (outputs / f"{number}.out").read_text()
            assert output_matches(command.expected, printed), failure(
                command, number, outputs, "output differs from the docs': " + repr(command.expected)
            )
    assert process.poll() is None, "the quick start stopped during the tour"
