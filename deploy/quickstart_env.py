"""Write the quick start's settings to .env and print them as shell exports.

`make run` (deploy/quickstart.sh) calls this first. The settings module reads
.env (kubeprobe_site/settings.py), so `python manage.py ...` in another shell
uses the same secret key, database and Redis as the running portal.

Each setting comes from the environment of `make run` if given there, else
from the .env written last time, else the trial default; the public URL always
follows PORT unless given. Lines of .env this script does not own are kept.
Standard library only: it runs before Django is configured.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "# Written by `make run` (deploy/quickstart.sh) on each start; read by kubeprobe_site/settings.py.\n"
    "# Change a value here or on the command line (`make run REDIS_URL=...`); lines you add are kept.\n"
)
LINE = re.compile(r"\A(?:export )?([A-Za-z_0-9]+)=(.*)\Z")


def read_env_file(path: Path) -> tuple[dict[str, str], list[str]]:
    """Values of an existing .env, and its lines in order."""
    if not path.is_file():
        return {}, []
    values: dict[str, str] = {}
    lines = path.read_text().splitlines()
    for line in lines:
        match = LINE.match(line)
        if match:
            value = match.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[match.group(1)] = value
    return values, lines


def quickstart_settings(old: dict[str, str], var_dir: Path) -> dict[str, str]:
    def pick(name: str, default: str) -> str:
        return os.environ.get(name) or old.get(name) or default

    # A trial started before .env existed kept its key here; kubeconfigs are
    # encrypted with a key derived from it, so it stays the same.
    legacy_key = var_dir / "dev-secret-key"
    secret = legacy_key.read_text().strip() if legacy_key.is_file() else secrets.token_urlsafe(50)
    port = os.environ.get("PORT") or "8000"
    return {
        "KUBEPROBE_DEBUG": pick("KUBEPROBE_DEBUG", "1"),
        "KUBEPROBE_LOCAL_EXECUTOR_ENABLED": pick("KUBEPROBE_LOCAL_EXECUTOR_ENABLED", "1"),
        "SECRET_KEY": pick("SECRET_KEY", secret),
        "DATABASE_URL": pick("DATABASE_URL", f"sqlite:///{var_dir / 'kubeprobe.sqlite3'}"),
        # Not Redis's usual 6379, so a Redis already on this host is left alone.
        "REDIS_URL": pick("REDIS_URL", "redis://127.0.0.1:16379/0"),
        "KUBEPROBE_PUBLIC_URL": os.environ.get("KUBEPROBE_PUBLIC_URL")
        or f"http://127.0.0.1:{port}",
    }


def write_env_file(path: Path, settings: dict[str, str], old_lines: list[str]) -> None:
    kept = [
        line
        for line in old_lines
        if not line.startswith("# Written by `make run`")
        and not line.startswith("# Change a value here")
        and not ((m := LINE.match(line)) and m.group(1) in settings)
    ]
    body = "".join(f"{name}={value}\n" for name, value in settings.items())
    extra = "\n".join(kept).strip()
    text = HEADER + body + (f"\n{extra}\n" if extra else "")
    # It holds the secret key: readable by its owner only.
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def main() -> int:
    env_file = ROOT / ".env"
    old, old_lines = read_env_file(env_file)
    settings = quickstart_settings(old, ROOT / "var")
    write_env_file(env_file, settings, old_lines)
    for name, value in settings.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
