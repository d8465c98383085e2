"""Bearer tokens with scopes, from a tokens file or the ``LABSAT_TOKENS`` environment variable.

Scopes are ordered: ``read`` (look at benches, jobs, records, artifacts) < ``operate`` (submit, cancel,
pause and resume jobs, set channels, emergency stop, deploy) < ``admin`` (delete records). A token
grants its scope and every lower one. Every route declares the scope it needs; requests without a
token get 401, with a token of too low a scope 403. Nothing writes anonymously; reads are anonymous
only when the tokens file says ``anonymous_read: true``.

Tokens file (YAML)::

    anonymous_read: false          # optional
    tokens:
      - name: alice                # shown in logs and as the job's submitter
        scope: operate
        sha256: 9f86d08...         # hex SHA-256 of the token: the file then holds no secret
      - name: ci
        scope: read
        token: a-plain-token       # or the token itself (keep the file private)

Environment: ``LABSAT_TOKENS="alice:operate:TOKEN,viewer:read:TOKEN2"`` (``name:scope:token``, commas
between entries); its tokens are added to the file's.

Tokens are compared by their SHA-256 digests, so the table never holds a plain token it did not have to.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from labsat.errors import LabsatError

TOKENS_ENV = "LABSAT_TOKENS"


class Scope(IntEnum):
    READ = 1
    OPERATE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Scope:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown scope {text!r} (read, operate, admin)") from None


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name and scope."""

    name: str
    scope: Scope


ANONYMOUS = Principal("anonymous", Scope.READ)


class TokenError(LabsatError):
    """A tokens file or ``LABSAT_TOKENS`` entry that cannot be used."""


class _TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    scope: str
    token: str | None = Field(None, min_length=16)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")

    @model_validator(mode="after")
    def _one_secret(self) -> _TokenEntry:
        if (self.token is None) == (self.sha256 is None):
            raise ValueError("give exactly one of 'token' and 'sha256'")
        Scope.parse(self.scope)
        return self


class _TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anonymous_read: bool = False
    tokens: list[_TokenEntry] = Field(default_factory=list)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenTable:
    """Token digests -> principals."""

    def __init__(self, principals: dict[str, Principal], *, anonymous_read: bool = False) -> None:
        self._by_digest = principals
        self.anonymous_read = anonymous_read

    def __len__(self) -> int:
        return len(self._by_digest)

    def lookup(self, token: str) -> Principal | None:
        return self._by_digest.get(digest(token))

    @classmethod
    def load(cls, path: Path | None = None, env: str | None = None) -> TokenTable:
        """Tokens from ``path`` (YAML, see module doc) plus ``env`` (``name:scope:token,...``)."""
        principals: dict[str, Principal] = {}
        anonymous_read = False
        if path is not None:
            try:
                parsed = _TokensFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
            except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
                raise TokenError(f"cannot read tokens file {path}: {exc}") from None
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                raise TokenError(f"{path}: {where}: {first['msg']}") from None
            anonymous_read = parsed.anonymous_read
            for entry in parsed.tokens:
                key = entry.sha256.lower() if entry.sha256 else digest(entry.token or "")
                principals[key] = Principal(entry.name, Scope.parse(entry.scope))
        principals.update(_env_principals(env or ""))
        return cls(principals, anonymous_read=anonymous_read)

    @classmethod
    def from_environment(cls, path: Path | None) -> TokenTable:
        return cls.load(path, os.environ.get(TOKENS_ENV))


def _env_principals(env: str) -> dict[str, Principal]:
    """``name:scope:token`` entries separated by commas."""
    principals = {}
    for item in filter(None, (part.strip() for part in env.split(","))):
        name, scope, token = [*item.split(":", 2), "", ""][:3]
        if not name or len(token) < 16:
            raise TokenError(f"{TOKENS_ENV}: entry {name!r} is not name:scope:token with a token of 16+ characters")
        try:
            principals[digest(token)] = Principal(name, Scope.parse(scope))
        except ValueError as exc:
            raise TokenError(f"{TOKENS_ENV}: entry {name!r}: {exc}") from None
    return principals


def write_admin_token(path: Path) -> str:
    """Create a tokens file holding one new admin token (readable by its owner only); returns the token."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"tokens": [{"name": "admin", "scope": "admin", "token": token}]})
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write("# labsat service tokens (see labsat.api.auth for the format)\n" + text)
    return token


def add_token(path: Path, name: str, scope: Scope) -> str:
    """Add a new token of ``scope`` named ``name`` to the tokens file (created, owner-only, if missing).

    Only the token's SHA-256 goes into the file, so the file holds no secret for it: the token is returned
    once, to be handed to whoever needs it. A service reads the file when it starts.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        parsed = _TokensFile.model_validate(loaded)
    except (OSError, yaml.YAMLError, UnicodeDecodeError, ValidationError) as exc:
        raise TokenError(f"cannot add a token to {path}: {exc}") from None
    if any(entry.name == name for entry in parsed.tokens):
        raise TokenError(f"{path} already has a token named {name!r}; pick another name")
    token = secrets.token_urlsafe(32)
    entries = [*loaded.get("tokens", []), {"name": name, "scope": scope.label, "sha256": digest(token)}]
    text = yaml.safe_dump({**loaded, "tokens": entries}, sort_keys=False)
    path.write_text("# labsat service tokens (see labsat.api.auth for the format)\n" + text, encoding="utf-8")
    return token


_bearer = HTTPBearer(auto_error=False, description="A labsat token: `Authorization: Bearer <token>`.")


SCOPE_ATTRIBUTE = "labsat_scope"
"""Attribute of a route dependency that names the scope it requires (read when documenting routes)."""


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """The dependency that admits requests with a token of ``scope`` or higher (see module doc)."""

    async def check(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        table: TokenTable = request.app.state.tokens
        if credentials is None:
            if scope is Scope.READ and table.anonymous_read:
                return ANONYMOUS
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        principal = table.lookup(credentials.credentials)
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        if principal.scope < scope:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"token {principal.name!r} has scope {principal.scope.label}; this needs {scope.label}",
            )
        return principal

    setattr(check, SCOPE_ATTRIBUTE, scope)  # read back when documenting routes
    return check


ReadAccess = Annotated[Principal, Depends(require(Scope.READ))]
OperateAccess = Annotated[Principal, Depends(require(Scope.OPERATE))]
AdminAccess = Annotated[Principal, Depends(require(Scope.ADMIN))]


def route_scope(dependant: Any) -> Scope | None:
    """The highest scope any of a route's dependencies requires (None: the route is open)."""
    scopes = [route_scope(sub) for sub in dependant.dependencies]
    own = getattr(dependant.call, SCOPE_ATTRIBUTE, None)
    found = [s for s in [own, *scopes] if s is not None]
    return max(found) if found else None
