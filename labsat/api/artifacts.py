"""Artifacts: the files calibrations, models, jobs and evaluations leave under ``<data>/artifacts``.

Paths are checked part by part (letters, digits, ``.``, ``_``, ``-``; no part may start with a dot) and
the resolved file must lie inside the item's folder, so neither ``..`` nor a symbolic link can reach
anything else on the bench PC.
"""

from __future__ import annotations

import re
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from labsat.api.auth import ReadAccess
from labsat.api.deps import EngineDep
from labsat.api.schemas import ArtifactFile
from labsat.jobs.engine import JobEngine
from labsat.store import ARTIFACTS, NotFound

router = APIRouter(prefix="/artifacts", tags=["artifacts"])

ArtifactKind = Literal["calibrations", "models", "jobs", "evaluations"]
ItemId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
_PART = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


def _folder(engine: JobEngine, kind: str, item_id: str) -> FilePath:
    folder = engine.store.root / ARTIFACTS / kind / item_id
    if not folder.is_dir():
        raise NotFound(f"no artifacts for {kind}/{item_id}")
    return folder


@router.get("/{kind}/{item_id}", summary="List an item's artifacts")
def list_artifacts(who: ReadAccess, kind: ArtifactKind, item_id: ItemId, engine: EngineDep) -> list[ArtifactFile]:
    """Every file of a calibration, model, job or evaluation (plots, arrays, reports), with its download URL."""
    folder = _folder(engine, kind, item_id)
    return [
        ArtifactFile(
            path=path.relative_to(folder).as_posix(),
            size=path.stat().st_size,
            url=f"/api/artifacts/{kind}/{item_id}/{path.relative_to(folder).as_posix()}",
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and all(_PART.match(part) for part in path.relative_to(folder).parts)
        and path.resolve().is_relative_to(folder.resolve())  # a link out of the tree is not an artifact
    ]


@router.get("/{kind}/{item_id}/{path:path}", summary="Download an artifact", response_class=FileResponse)
def get_artifact(who: ReadAccess, kind: ArtifactKind, item_id: ItemId, path: str, engine: EngineDep) -> FileResponse:
    folder = _folder(engine, kind, item_id)
    parts = path.split("/")
    if not all(_PART.match(part) for part in parts):  # before touching the file system (a NUL byte, "..")
        raise NotFound(f"no artifact {path!r} in {kind}/{item_id}")
    target = folder.joinpath(*parts).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise NotFound(f"no artifact {path!r} in {kind}/{item_id}")
    if not target.is_file():
        raise NotFound(f"no artifact {path!r} in {kind}/{item_id}")
    return FileResponse(target)
