"""Command-line options built from a pydantic model, so a run's settings are declared once.

:func:`settings_options` gives a typer command one option per field of a settings model
(:class:`~labsat.training.config.TrainConfig`, a calibration's options): the option's name is the field's
(``batch_size`` → ``--batch-size``), its help the field's description, its shown default the model's.
The command receives the validated model; a value the model refuses is one error line naming the option.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from labsat.errors import LabsatError

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


class SettingsError(LabsatError):
    """A command-line value the settings model refuses."""


def option_name(field: str, prefix: str = "") -> str:
    """``batch_size`` → ``--batch-size``; with prefix ``lut``, ``step`` → ``--lut-step``."""
    return "--" + (f"{prefix}_{field}" if prefix else field).replace("_", "-")


def _plain_type(annotation: Any) -> type:
    """The type a command line gives for a field: the field's own when click can parse it, text otherwise.

    Text goes to the model unchanged, which parses it (a union such as ``float | "peak"``, a comma-separated
    tuple) and checks it with the same rules as a REST request.
    """
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1:
        return _plain_type(args[0])
    if annotation in (bool, int, float, str):
        return annotation
    if get_origin(annotation) is Literal and all(isinstance(arg, str) for arg in args):
        return str
    return str


def _shown_default(info: FieldInfo) -> str | None:
    default = info.get_default(call_default_factory=True)
    if default is None:
        return None
    if isinstance(default, tuple | list):
        return ",".join(str(item) for item in default) or '""'
    return str(default)


def _parameter(name: str, info: FieldInfo, option: str) -> inspect.Parameter:
    """One keyword parameter carrying the typer option of a model field; ``None`` means "not given"."""
    kind = _plain_type(info.annotation)
    names = [f"{option}/--no-{option.removeprefix('--')}"] if kind is bool else [option]
    typer_option = typer.Option(*names, help=info.description, show_default=_shown_default(info) or False)
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[kind | None, typer_option]
    )


def _describe(error: ValidationError, options: dict[str, str]) -> str:
    """One line per refused value, each naming its command-line option."""
    lines = []
    for problem in error.errors():
        where = str(problem["loc"][0]) if problem["loc"] else ""
        lines.append(f"{options.get(where, 'settings')}: {problem['msg']}")
    return "; ".join(lines)


def build_settings(model: type[M], given: dict[str, Any], prefix: str = "") -> M:
    """The model from the options a user gave (``None``: not given, the model's default applies)."""
    try:
        return model.model_validate({name: value for name, value in given.items() if value is not None})
    except ValidationError as exc:
        options = {name: option_name(name, prefix) for name in model.model_fields}
        raise SettingsError(_describe(exc, options)) from None


def settings_options(
    model: type[M], into: str, *, prefix: str = "", exclude: Iterable[str] = (), optional: bool = False
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorate a command so every field of ``model`` (but ``exclude``) is an option, validated into ``into``.

    The command declares ``into`` as a parameter and its other options as usual; the options of the model's
    fields are added to its signature, which is what typer reads. ``prefix`` keeps the options of several
    models on one command apart (``--lut-step``); with ``optional`` the command gets ``None`` when none of
    them was given (a procedure that then keeps what it would do anyway, such as a resumed run's own options).
    """
    left_out = set(exclude)
    fields = {name: info for name, info in model.model_fields.items() if name not in left_out}
    keys = {name: f"{prefix}_{name}" if prefix else name for name in fields}

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        hints = get_type_hints(command, include_extras=True)
        own = [  # a command's **kwargs take what decorators below it pass on; typer must not see them
            parameter.replace(annotation=hints.get(name, parameter.annotation))
            for name, parameter in inspect.signature(command).parameters.items()
            if name != into and parameter.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        clash = {parameter.name for parameter in own} & set(keys.values())
        if clash:
            raise TypeError(f"{command.__name__} declares {sorted(clash)} itself and through {model.__name__}")
        added = [_parameter(keys[name], info, option_name(name, prefix)) for name, info in fields.items()]

        @wraps(command)
        def run(**kwargs: Any) -> R:
            given = {name: kwargs.pop(key) for name, key in keys.items()}
            nothing = all(value is None for value in given.values())
            settings = None if optional and nothing else build_settings(model, given, prefix)
            return command(**kwargs, **{into: settings})

        parameters = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY) for parameter in own] + added
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        del run.__wrapped__  # typer must read the signature above, not the command's own
        return run

    return decorate
