"""One owner per bench across processes: an OS lock per bench file and per instrument address.

Within a process every write passes the bench's one guard; across processes nothing did, so a CLI
command and a service job could each open the same instruments behind guards of their own. Opening a
bench now takes an exclusive, non-blocking ``flock`` on a lock file for the bench file's resolved
path and one for every instrument address that names hardware (two bench files on one
``/dev/ttyUSB0`` are one bench), under :func:`~labsat.paths.state_dir`. Another process that opens
the bench meets :class:`BenchInUse`, before it touches a single instrument, with the holder named from
the owner record kept next to each lock: pid, command, the job it runs and, for a service, its URL
(a CLI can then send the write through the service's API instead).

The operating system releases a lock when its process ends, however it ends (SIGKILL included), so a
record whose lock can be taken is stale and is never believed. Addresses private to one process
(``emulate://``, ``sim://``: an emulator or simulator each process starts for itself) take no lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

from labsat.errors import LabsatError
from labsat.paths import state_dir

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one owner per bench is then up to the user
    fcntl = None  # type: ignore[assignment]

LOCKS = "locks"
PRIVATE_SCHEMES = ("emulate://", "sim://")
"""Addresses of instruments a process makes for itself: nothing another process could reach."""


@dataclass(frozen=True)
class Owner:
    """Who holds a bench: written next to each of its locks while held."""

    pid: int
    command: str
    bench: str
    key: str
    since: float
    job: str | None = None
    url: str | None = None

    def describe(self) -> str:
        """``pid 4242 (labsat serve, job 01J..., service at http://127.0.0.1:8765)``."""
        details = [self.command] + ([f"job {self.job}"] if self.job else [])
        details += [f"service at {self.url}"] if self.url else []
        return f"pid {self.pid} ({', '.join(details)})"


class BenchInUse(LabsatError):
    """Another process owns the bench (or one of its instruments); nothing was opened, nothing written."""

    def __init__(self, bench: str, key: str, owner: Owner | None) -> None:
        self.bench = bench
        self.key = key
        self.owner = owner
        holder = owner.describe() if owner is not None else "another process (it has not written its owner record yet)"
        super().__init__(f"bench {bench!r} is in use: {key} is held by {holder}; nothing was written")

    def __reduce__(self) -> tuple[type[BenchInUse], tuple[str, str, Owner | None]]:
        """Pickled with its parts (a bench process that cannot open tells the service who holds the bench)."""
        return (type(self), (self.bench, self.key, self.owner))


@dataclass
class _Role:
    command: str | None = None
    url: str | None = None


_role = _Role()


def announce(*, command: str | None = None, url: str | None = None) -> None:
    """Say what this process is, for the owner records of the benches it opens from now on
    (``labsat serve`` gives its URL, so a CLI command can send its writes there)."""
    _role.command, _role.url = command, url


def announced() -> tuple[str | None, str | None]:
    """What this process said it is (command, URL): a service hands it to the bench processes it starts,
    whose owner records then name the service."""
    return _role.command, _role.url


def lock_keys(bench_file: str | None, addresses: Iterable[str | None]) -> list[str]:
    """What a bench is locked by: its file's resolved path (when it has a file) and its hardware addresses."""
    keys = sorted({f"address {a}" for a in addresses if a and not a.startswith(PRIVATE_SCHEMES)})
    if bench_file is not None and Path(bench_file).is_file():
        keys.insert(0, f"bench file {Path(bench_file).resolve()}")
    return keys


class BenchLock:
    """The locks that make this process the bench's one owner; :meth:`release` (or process exit) frees them."""

    def __init__(self, owner: Owner, held: list[tuple[str, Path, IO[str]]]) -> None:
        self.owner = owner
        self._held = held

    @classmethod
    def acquire(cls, bench: str, keys: Iterable[str]) -> BenchLock:
        """Take every lock of ``keys`` or none; :class:`BenchInUse` names the holder of the first one taken."""
        directory = state_dir() / LOCKS
        directory.mkdir(parents=True, exist_ok=True)
        command = _role.command or _this_command()
        owner = Owner(os.getpid(), command, bench, "", time.time(), url=_role.url)
        held: list[tuple[str, Path, IO[str]]] = []
        try:
            for key in keys:
                path = directory / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.lock"
                handle = path.open("a")
                if not _try_lock(handle):
                    handle.close()
                    raise BenchInUse(bench, key, _read_owner(path))
                held.append((key, path, handle))
        except BaseException:
            for _, _, taken in held:
                taken.close()
            raise
        lock = cls(owner, held)
        lock._write()
        return lock

    def note(self, *, job: str | None) -> None:
        """Record the job this process now runs on the bench (None: none), for whoever finds it held."""
        self.owner = replace(self.owner, job=job)
        self._write()

    def release(self) -> None:
        """Forget the owner records, then free the locks; idempotent."""
        held, self._held = self._held, []
        for _, path, handle in held:
            _owner_path(path).unlink(missing_ok=True)
            handle.close()  # closing the file frees its lock

    def _write(self) -> None:
        for key, path, _ in self._held:
            record = {**asdict(self.owner), "key": key}
            target = _owner_path(path)
            partial = target.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(record))
            os.replace(partial, target)  # a reader sees the old record or the new one, never half of one


def _this_command() -> str:
    """This process's program and first argument (``pytest -q``, ``labsat train``), for a process that
    did not :func:`announce` itself."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    name = program.parent.name if program.name == "__main__.py" else program.name
    return " ".join([name, *sys.argv[1:2]])


def _try_lock(handle: IO[str]) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _owner_path(lock: Path) -> Path:
    return lock.with_suffix(".owner.json")


def _read_owner(lock: Path) -> Owner | None:
    """The record next to a lock someone holds (None: not written yet, or unreadable)."""
    try:
        data: dict[str, Any] = json.loads(_owner_path(lock).read_text())
        return Owner(**data)
    except (OSError, ValueError, TypeError):
        return None
