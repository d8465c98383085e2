"""Running ``labsat`` commands in a test: a JSON answer, or the one-line error of a refusal."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from labsat.cli import app

runner = CliRunner()


def cli_json(*args: str) -> dict[str, Any]:
    """What ``labsat ARGS --json`` prints, parsed; the command must succeed."""
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def cli_refusal(*args: str) -> str:
    """The one-line error of a refused command (exit 2, no traceback), whitespace folded."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return " ".join(result.stderr.split())
