"""How the command line reports what stops a command: one or two lines on standard error with the fix,
exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from bot.config import AppConfig, explain_load_error, load_config

EXIT_USAGE = 2
errors = Console(stderr=True)


def config_or_exit(path: Path | None) -> AppConfig:
    """The configuration at `path`; a missing file, a TOML syntax error or a bad value ends the command."""
    try:
        return load_config(path)
    except (ValidationError, OSError, ValueError) as exc:  # TOMLDecodeError is a ValueError
        for line in explain_load_error(exc, path).splitlines():
            errors.print(f"[red]Cannot read the configuration:[/red] {escape(line)}", soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
