"""Every command's help at 80 columns: each option explained, types in plain words (no ``<bool>``, ``<list[str]>``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from labsat.cli import app

runner = CliRunner()


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = dict(_commands(typer.main.get_command(app)))


def test_the_walk_reaches_the_service_commands() -> None:
    assert {("cancel",), ("pause",), ("resume",), ("stop",), ("deploy",), ("models",), ("token", "create")} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_every_option_has_help_and_a_plain_type(path: tuple[str, ...]) -> None:
    undocumented = [param.name for param in COMMANDS[path].params if not param.help]
    assert undocumented == [], f"labsat {' '.join(path)}: options without help: {undocumented}"
    shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert shown.exit_code == 0, shown.output
    assert re.findall(r"<[a-z][^>]*>", shown.stdout.replace("<data>", "")) == []
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80


@pytest.mark.parametrize("path", [(), ("token",), ("sweep",)], ids=lambda path: " ".join(("labsat", *path)))
def test_a_command_group_s_own_help_shows_plain_types_too(path: tuple[str, ...]) -> None:
    shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert shown.exit_code == 0, shown.output
    assert "--help" in shown.stdout and re.findall(r"<[a-z][^>]*>", shown.stdout) == []
