"""The ``labsat`` command line. Each command group lives in its own module and registers on ``app``."""

from __future__ import annotations

from labsat.cli import calibrate as _calibrate  # noqa: F401  (registers commands)
from labsat.cli import client as _client  # noqa: F401  (registers commands)
from labsat.cli import control as _control  # noqa: F401  (registers commands)
from labsat.cli import demo as _demo  # noqa: F401  (registers commands)
from labsat.cli import devices as _devices  # noqa: F401  (registers commands)
from labsat.cli import evaluate as _evaluate  # noqa: F401  (registers commands)
from labsat.cli import relock as _relock  # noqa: F401  (registers commands)
from labsat.cli import serve as _serve  # noqa: F401  (registers commands)
from labsat.cli import sweep as _sweep  # noqa: F401  (registers commands)
from labsat.cli import tokens as _tokens  # noqa: F401  (registers commands)
from labsat.cli import train as _train  # noqa: F401  (registers commands)
from labsat.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
