"""Bearer tokens and roles (SPEC §4): steward writes, viewer reads, coalition sees its own."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from api.recorders import StoredToken
from domain.hashing import format_instant
from domain.values import bidi_control_problem, control_problem, show_controls

__all__ = ["ROLES", "Forbidden", "Principal", "Role", "TokenBook", "Unauthorized", "hash_token"]

Role = Literal["steward", "viewer", "coalition"]
ROLES: tuple[Role, ...] = ("steward", "viewer", "coalition")
REMEMBER_SECONDS = 30.0
TOKEN_PREFIX = "pl_"  # noqa: S105 - a prefix that makes tokens recognisable, not a secret


class Unauthorized(Exception):
    """No token, or one this ledger never issued: HTTP 401."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Forbidden(Exception):
    """A valid token whose role does not allow this: HTTP 403."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    coalition_id: str | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenBook:
    """Issues and checks tokens; only their SHA-256 is ever stored."""

    def __init__(self, recorder: object) -> None:
        self.recorder = recorder
        # Tokens are looked up on every request; a valid one is remembered for a short while.
        self._known: dict[str, tuple[float, Principal]] = {}

    def issue(self, role: Role, name: str, coalition_id: str | None = None) -> str:
        if role not in ROLES:
            msg = f"role must be one of {', '.join(ROLES)}"
            raise ValueError(msg)
        if (role == "coalition") != (coalition_id is not None):
            msg = "a coalition token needs --coalition, and only a coalition token takes it"
            raise ValueError(msg)
        if not name.strip():
            msg = "a token needs a name: it becomes recorded_by on what the token writes"
            raise ValueError(msg)
        # The name is recorded on every event the token writes: the door's rules for names.
        problem = control_problem(name) or bidi_control_problem(name)
        if problem is not None:
            msg = f"the token's name {show_controls(problem)}"
            raise ValueError(msg)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.recorder.insert_token(  # type: ignore[attr-defined]
            hash_token(token),
            StoredToken(name.strip(), role, coalition_id),
            format_instant(datetime.now(UTC)),
        )
        return token

    def session_secret(self) -> str:
        """The key that signs web sessions and CSRF cookies: made once per ledger, shared by
        every server process (it lives beside the tokens, never in a file or the URL)."""
        return str(self.recorder.state("session_secret", secrets.token_urlsafe(32)))  # type: ignore[attr-defined]

    def has_any(self) -> bool:
        return bool(self.recorder.count_tokens())  # type: ignore[attr-defined]

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthorized("Send a token: Authorization: Bearer <token>.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Use the Bearer scheme: Authorization: Bearer <token>.")
        return self.authenticate_hash(hash_token(token.strip()))

    def authenticate_hash(self, presented: str) -> Principal:
        """The holder of the token whose SHA-256 this is (a web session keeps only that)."""
        known = self._known.get(presented)
        if known is not None and time.monotonic() - known[0] < REMEMBER_SECONDS:
            return known[1]
        stored: StoredToken | None = self.recorder.find_token(presented)  # type: ignore[attr-defined]
        # The lookup is by hash; compare again in constant time before trusting it.
        if stored is None or not hmac.compare_digest(presented, stored.token_hash):
            raise Unauthorized("This token is not valid for this ledger.")
        principal = Principal(stored.name, stored.role, stored.coalition_id)  # type: ignore[arg-type]
        self._known[presented] = (time.monotonic(), principal)
        return principal
