"""Settings come from the environment; production values pass `check --deploy`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "production.env.example"


def production_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBEPROBE_", "SECURE_", "SECRET_KEY"))
    }
    for line in EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    # Secrets through *_FILE, as a Kubernetes Secret mount would give them.
    (tmp_path / "secret_key").write_text("x" * 20 + "Kq9!zR2@vL7#pW4$nB8%" + "y" * 20 + "\n")
    (tmp_path / "enc_key").write_text(Fernet.generate_key().decode())
    env.pop("SECRET_KEY")
    env.pop("KUBEPROBE_ENCRYPTION_KEY")
    env["SECRET_KEY_FILE"] = str(tmp_path / "secret_key")
    env["KUBEPROBE_ENCRYPTION_KEY_FILE"] = str(tmp_path / "enc_key")
    env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    env["KUBEPROBE_VAR_DIR"] = str(tmp_path / "var")
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_with_production_env_reports_no_warnings(tmp_path: Path) -> None:
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_missing_secret_key_is_a_clear_error(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    env.pop("SECRET_KEY_FILE")
    result = manage(env, "check")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_missing_encryption_key_is_a_clear_error(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    env.pop("KUBEPROBE_ENCRYPTION_KEY_FILE")
    result = manage(env, "check")
    assert result.returncode != 0
    assert "KUBEPROBE_ENCRYPTION_KEY is not set" in result.stderr


def test_channel_layer_reads_outlast_its_blocking_wait_for_messages() -> None:
    from channels.layers import get_channel_layer
    from channels_redis.utils import create_pool

    layer = get_channel_layer()
    pool = create_pool(layer.hosts[0])
    # BZPOPMIN blocks brpop_timeout seconds; a shorter socket timeout fails idle receives.
    assert pool.connection_kwargs["socket_timeout"] > layer.brpop_timeout
