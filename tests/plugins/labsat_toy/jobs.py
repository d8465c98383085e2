"""A job kind from outside labsat: ``toy_echo`` reports one progress step and returns its message.

Published the way a lab would, through an entry point in the ``labsat.jobs`` group
(``toy_echo = labsat_toy.jobs:ECHO``); ``tests/test_job_kind_plugins.py`` installs it for a test.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from labsat.jobs.kinds import JobContext, JobKind


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field("hello", max_length=100, description="What the job returns.")


def run_echo(context: JobContext, params: EchoParams) -> dict[str, Any]:
    context.progress(1, 1, "echo")
    return {"echo": params.message}


ECHO = JobKind("toy_echo", EchoParams, run_echo, "Toy plugin kind: return the message.")
