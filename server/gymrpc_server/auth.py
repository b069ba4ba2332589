"""Who is calling: bearer tokens, users and roles.

A tokens file is TOML with one ``[[tokens]]`` table per credential::

    [[tokens]]
    user = "alice"
    role = "admin"                 # or "user" (the default)
    token = "a-long-random-secret" # or token_sha256 = "<hex digest of the token>"

Clients send ``authorization: Bearer <token>`` metadata. Only SHA-256 digests of the
tokens are kept in memory, so a memory dump or a log line never shows a token, and a
tokens file may hold digests only (``token_sha256``).
"""

from __future__ import annotations

import enum
import hashlib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ANONYMOUS", "Authenticator", "Identity", "Role", "load_tokens"]


class Role(enum.Enum):
    """What a user may do."""

    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller.

    Attributes:
        user: User name from the tokens file, or ``"anonymous"``.
        role: The user's role.
    """

    user: str
    role: Role

    @property
    def is_admin(self) -> bool:
        """True for admins, who may see hidden state."""
        return self.role is Role.ADMIN


ANONYMOUS = Identity("anonymous", Role.USER)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_tokens(path: Path) -> dict[str, Identity]:
    """Read a tokens file.

    Args:
        path: The TOML file.

    Returns:
        A map from SHA-256 hex digest of each token to its identity.

    Raises:
        ValueError: If the file is not valid TOML or an entry is malformed; the message
            names the entry and the problem (never the token).
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"tokens file {path}: not valid TOML: {error}") from error
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ValueError(f"tokens file {path}: cannot be read ({reason})") from error
    entries = document.get("tokens")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"tokens file {path}: expected one or more [[tokens]] tables")
    table: dict[str, Identity] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"tokens file {path}, entry {number}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a table")
        unknown = set(entry) - {"user", "role", "token", "token_sha256"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        user, role = entry.get("user"), entry.get("role", "user")
        if not isinstance(user, str) or not user:
            raise ValueError(f"{where}: 'user' must be a non-empty string")
        if role not in ("user", "admin"):
            raise ValueError(f"{where}: role {role!r}; expected 'user' or 'admin'")
        digest = _entry_digest(entry, where)
        if digest in table:
            raise ValueError(f"{where}: the same token appears twice")
        table[digest] = Identity(user, Role(role))
    return table


def _entry_digest(entry: dict[str, object], where: str) -> str:
    token, hashed = entry.get("token"), entry.get("token_sha256")
    if (token is None) == (hashed is None):
        raise ValueError(f"{where}: give exactly one of 'token' and 'token_sha256'")
    if token is not None:
        if not isinstance(token, str) or len(token) < 16:
            raise ValueError(f"{where}: 'token' must be a string of at least 16 characters")
        return _digest(token)
    if not isinstance(hashed, str) or len(hashed) != 64:
        raise ValueError(f"{where}: 'token_sha256' must be 64 hexadecimal digits")
    try:
        bytes.fromhex(hashed)
    except ValueError as error:
        raise ValueError(f"{where}: 'token_sha256' must be 64 hexadecimal digits") from error
    return hashed.lower()


class Authenticator:
    """Maps call metadata to an identity.

    Args:
        tokens: Digest-to-identity map from :func:`load_tokens`, or ``None`` for an
            open server.
        anonymous: Identity of every caller on an open server.
    """

    def __init__(self, tokens: dict[str, Identity] | None, anonymous: Identity = ANONYMOUS):
        self._tokens = tokens
        self._anonymous = anonymous

    @property
    def required(self) -> bool:
        """True when calls must carry a valid token."""
        return self._tokens is not None

    def identify(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Identity | None:
        """Return the caller's identity, or ``None`` when credentials are missing or bad.

        Args:
            metadata: The call's invocation metadata.

        Returns:
            The identity; on an open server always the anonymous identity.
        """
        if self._tokens is None:
            return self._anonymous
        for key, value in metadata or ():
            if key != "authorization":
                continue
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token:
                return self._tokens.get(_digest(token.strip()))
            return None
        return None
