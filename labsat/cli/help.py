"""Help that reads as plain words: ``--seeds INTEGER``, ``--scope read|operate|admin``, a flag with no type.

typer shows a parameter's Python type in angle brackets (``<bool>``, ``<list[str]>``, ``<int range>``),
which tells a user of the command line nothing they can type. The command group below gives every
parameter of the command it resolves a plain label instead: a flag none, a choice its values, anything
else click's name of its type in capitals (a repeatable option says so in its help).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

from typer.core import TyperGroup

_NAMES = {int: "INTEGER", float: "FLOAT", str: "TEXT", bool: "BOOLEAN", Path: "PATH"}


def plain_label(param: Any) -> str | None:
    """What the help shows after an option's names (None: nothing, for a flag)."""
    if getattr(param, "is_flag", False):
        return None
    if getattr(param, "metavar", None) and param.param_type_name == "option":  # an argument's is its name
        return str(param.metavar)
    desc = param.type_descriptor
    if desc.is_choice:
        label = "|".join(str(getattr(choice, "value", choice)) for choice in desc.choices or ())
    else:
        annotation = desc.annotation
        if get_origin(annotation) is list:
            (annotation,) = get_args(annotation)
        label = _NAMES.get(annotation, getattr(annotation, "__name__", "VALUE").upper())
    return label + ("..." if param.nargs != 1 else "")


def _plain(param: Any) -> Any:
    label = plain_label(param)
    param.display_type_rich = lambda ctx: label
    return param


def plain_help(command: Any) -> Any:
    """Give each of ``command``'s parameters, ``--help`` too, its plain label (in place; returns ``command``)."""
    for param in command.params:
        _plain(param)
    help_option = command.get_help_option
    command.get_help_option = lambda ctx: None if (found := help_option(ctx)) is None else _plain(found)
    return command


class PlainHelpGroup(TyperGroup):
    """A command group whose commands, and the group itself (``--version``), show plain type labels in their
    help (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_help(self)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        return None if command is None else plain_help(command)
