"""Error types that users see.

Every error labsat raises on purpose derives from :class:`LabsatError`, so the CLI and the service can
turn it into one clear message (no traceback) and a non-zero exit or an HTTP error.
"""

from __future__ import annotations


class LabsatError(Exception):
    """Base of every error meant for the user; its message must name the thing that is wrong."""


class BenchFileError(LabsatError):
    """A bench file is malformed: the message names the file and the key."""

    def __init__(self, path: str, key: str, message: str) -> None:
        self.path = path
        self.key = key
        self.detail = message
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")

    def __reduce__(self) -> tuple[type[BenchFileError], tuple[str, str, str]]:
        """Pickled with its three parts, so it crosses from a bench process to the service whole."""
        return (type(self), (self.path, self.key, self.detail))


class RefusedRequest(LabsatError):
    """A request was refused before anything was written, so the hardware state is unchanged."""


class LimitViolation(RefusedRequest):
    """A write would leave the configured safe envelope; nothing was written."""

    def __init__(self, device: str, channel: str, value: float, limit: str) -> None:
        self.device = device
        self.channel = channel
        self.value = value
        self.limit = limit
        super().__init__(f"{device}.{channel} = {value:g} refused: {limit}; nothing was written")

    def __reduce__(self) -> tuple[type[LimitViolation], tuple[str, str, float, str]]:
        """Pickled with its parts (a refusal in a bench process reaches the service as itself)."""
        return (type(self), (self.device, self.channel, self.value, self.limit))


class UnknownChannel(RefusedRequest):
    """A caller named a device or channel that the bench does not have."""


class Halted(RefusedRequest):
    """The bench is under an emergency stop: only the safe state may write until it is released."""


class BenchFaulted(Halted):
    """The bench latched a fault (a failed safe state, an output in an unknown state): only the safe state
    writes, and only an administrator's clear (``labsat clear-fault``) lets anything else write again."""


class InstrumentError(LabsatError):
    """An instrument (real or emulated) failed: no reply, a garbled reply, or an error it reported."""
