"""The stage bar of ``demo`` and ``evaluate``: the stage, how far it is, and an ETA."""

from __future__ import annotations

from rich.console import Console

from labsat.cli.progress import stage_bar


def test_the_bar_shows_the_stage_its_count_note_and_eta() -> None:
    console = Console(width=100, record=True, force_terminal=True)
    with stage_bar(console) as bar:
        bar.stage("training pat+sat (epochs)", total=10)
        bar.advance(4, "loss 0.412")
    frame = console.export_text()  # every frame drawn, the last one on leaving the block
    assert "training pat+sat (epochs)" in frame and "4/10" in frame and "loss 0.412" in frame and "ETA" in frame


def test_json_output_gets_no_bar() -> None:
    console = Console(width=100, record=True, force_terminal=True)
    with stage_bar(console, disable=True) as bar:
        bar.stage("calibrating")
        bar.advance(1)
    assert console.export_text() == ""
