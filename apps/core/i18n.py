"""The language of management command output.

`KUBEPROBE_LANGUAGE` wins (`zh-hans`, `en`); otherwise the POSIX locale variables in
GNU gettext's order (`LANGUAGE`, `LC_ALL`, `LC_MESSAGES`, `LANG`: `zh_CN.UTF-8` reads
as zh-hans); otherwise settings.LANGUAGE_CODE. Values KubeProbe has no catalog for
(`C`, `de_DE`) are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import translation

# Help texts of commands: lazy, read in command_language() when --help prints them.
# Typed as str, which argparse and BaseCommand.help declare (xgettext finds the name).
gettext_lazy = cast(Callable[[str], str], translation.gettext_lazy)

ENV_ORDER = ("KUBEPROBE_LANGUAGE", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def command_language(environ: dict[str, str] | None = None) -> str:
    """One of settings.LANGUAGES for a command's output, from the environment."""
    env = os.environ if environ is None else environ
    for name in ENV_ORDER:
        # LANGUAGE may list several ("zh_CN:en"); a locale may carry ".UTF-8" or "@euro".
        for value in env.get(name, "").split(":"):
            code = value.split(".")[0].split("@")[0].replace("_", "-").strip().lower()
            if not code or code in ("c", "posix"):
                continue
            try:
                return translation.get_supported_language_variant(code)
            except LookupError:
                continue
    return translation.get_supported_language_variant(settings.LANGUAGE_CODE)


def default_language() -> str:
    """settings.LANGUAGE_CODE as one of settings.LANGUAGES ("en-us" → "en")."""
    return translation.get_supported_language_variant(settings.LANGUAGE_CODE)


class LocalizedHelpCommand(BaseCommand):
    """A command whose --help, and output when run from the shell, are in
    command_language(); called from code (call_command) it speaks the active language."""

    # --help is printed while the arguments are parsed, before execute(); the help
    # texts are lazy, so they are translated here.
    def run_from_argv(self, argv: list[str]) -> None:
        with translation.override(command_language()):
            super().run_from_argv(argv)

    def print_help(self, prog_name: str, subcommand: str) -> None:
        with translation.override(command_language()):
            super().print_help(prog_name, subcommand)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        self.help = str(self.help)  # argparse wants a str: the lazy text, read now
        return super().create_parser(prog_name, subcommand, **kwargs)


class LocalizedCommand(LocalizedHelpCommand):
    """A command whose messages, errors and --help are in command_language(), however
    it is called."""

    def execute(self, *args: Any, **options: Any) -> Any:
        with translation.override(command_language()):
            return super().execute(*args, **options)
