"""What every route depends on besides its token: the engine the app was built with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from labsat.jobs.engine import JobEngine


async def get_engine(request: Request) -> JobEngine:
    return request.app.state.engine


EngineDep = Annotated[JobEngine, Depends(get_engine)]
