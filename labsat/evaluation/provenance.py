"""What a stored model was trained with, as a report shows it next to what was measured.

A report must stand alone: a drift curve means little without the dataset, the epochs, SAT's ρ, the seed,
the bench and the calibration behind it. Those are read from the model's stored metadata (what
:func:`~labsat.training.session.train_on_bench` recorded, its ``settings`` being the whole
:class:`~labsat.training.config.TrainConfig`), never re-derived, and every other training setting that
differs from its default is listed too, so two models that differ in anything show it.
"""

from __future__ import annotations

from typing import Any

from labsat.training.config import TrainConfig
from labsat.training.methods import MethodError, parse_method

HEADLINE = ("dataset", "method", "epochs", "rho", "seed", "bench", "calibration")
"""The settings every report names first, in this order (``rho`` is None for a method without SAT: ``sat`` False)."""

LABELS = {
    "dataset": "dataset",
    "method": "method",
    "epochs": "epochs",
    "rho": "ρ (SAT radius)",
    "seed": "seed",
    "bench": "trained on bench",
    "calibration": "calibration",
}
"""How a report's settings table names each headline setting."""


def _defaults() -> dict[str, Any]:
    return TrainConfig().settings()


def run_settings(metadata: dict[str, Any]) -> dict[str, Any]:
    """The headline settings (None where the model's record lacks one) and ``other``: every other recorded
    training setting that differs from :class:`TrainConfig`'s default (or that this labsat does not know).
    """
    config: dict[str, Any] = dict(metadata.get("settings") or {})
    method = metadata.get("method", config.get("method"))
    sat = _uses_sat(method, config.get("ascent"))
    settings: dict[str, Any] = {
        "dataset": metadata.get("dataset"),
        "method": method,
        "epochs": metadata.get("epochs", config.get("epochs")),
        "rho": config.get("rho") if sat else None,
        "seed": metadata.get("seed", config.get("seed")),
        "bench": metadata.get("bench"),
        "calibration": metadata.get("calibration"),
    }
    settings["sat"] = sat
    defaults = _defaults()
    settings["other"] = {
        key: value
        for key, value in config.items()
        if key not in HEADLINE and key != "sat" and (key not in defaults or defaults[key] != value)
    }
    return settings


def _uses_sat(method: Any, ascent: Any) -> bool:
    """Whether ``method`` takes SAT's ascent (so ρ means something); an unknown method keeps its ρ shown."""
    if not isinstance(method, str):
        return True
    try:
        return parse_method(method, ascent if isinstance(ascent, str) else None).sat
    except MethodError:
        return True


def setting_text(settings: dict[str, Any], key: str) -> str:
    """One setting of :func:`run_settings` as a table cell: ``–`` where it was not recorded, ``no SAT`` for
    the ρ of a method without SAT (its recorded ρ is never used)."""
    if key == "rho" and settings.get("sat") is False:
        return "no SAT"
    value = settings.get(key, settings.get("other", {}).get(key))
    if value is None:
        return "–"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "(none)"
    return f"{value:g}" if isinstance(value, float) else str(value)
