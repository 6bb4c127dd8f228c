"""Bearer tokens and roles (SPEC §4): steward writes, viewer reads, coalition sees its own."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from api.recorders import StoredToken
from domain.hashing import format_instant
from domain.values import bidi_control_problem, control_problem, show_controls

__all__ = [
    "ROLES",
    "Forbidden",
    "Principal",
    "Role",
    "TokenBook",
    "Unauthorized",
    "hash_token",
    "parse_lifetime",
]

Role = Literal["steward", "viewer", "coalition", "partner"]
ROLES: tuple[Role, ...] = ("steward", "viewer", "coalition", "partner")
# A valid token is remembered this long in each process: a token revoked (or expired) in another
# process stops working here within it (issue 14: within 2 s), without a lookup per request.
REMEMBER_SECONDS = 1.0
TOUCH_EVERY = timedelta(minutes=1)  # "last used" is written at most this often per token
FEED_PREFIX = "plf_"
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
    """Who holds a token: its name, role, and the coalition or partner it is bound to."""

    name: str
    role: Role
    coalition_id: str | None = None
    partner_id: str | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_LIFETIME = re.compile(r"^([1-9][0-9]{0,4})([hdw])$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_lifetime(text: str) -> timedelta:
    """How long a token lives: ``12h``, ``90d`` or ``8w`` (a whole number, then hours, days or
    weeks). Raises ValueError with an example otherwise."""
    found = _LIFETIME.match(text.strip())
    if found is None:
        msg = f"{text!r} is not a lifetime such as 90d (days), 12h (hours) or 8w (weeks)"
        raise ValueError(msg)
    return int(found.group(1)) * _UNITS[found.group(2)]


class TokenBook:
    """Issues and checks tokens; only their SHA-256 is ever stored."""

    def __init__(self, recorder: object, clock: Callable[[], float] = time.monotonic) -> None:
        self.recorder = recorder
        self.clock = clock  # seconds, for how long a valid token is remembered
        # Tokens are looked up on every request; a valid one is remembered for a short while.
        self._known: dict[str, tuple[float, Principal]] = {}
        self._sessions: dict[str, tuple[float, str]] = {}  # session id -> (seen, token hash)

    def issue(
        self,
        role: Role,
        name: str,
        coalition_id: str | None = None,
        *,
        partner_id: str | None = None,
        expires_in: timedelta | None = None,
    ) -> str:
        """A new token (shown once; only its SHA-256 is kept), valid for ``expires_in`` or
        until revoked. Raises ValueError for a role, coalition or name it cannot take."""
        if role not in ROLES:
            msg = f"role must be one of {', '.join(ROLES)}"
            raise ValueError(msg)
        if (role == "coalition") != (coalition_id is not None):
            msg = "a coalition token needs --coalition, and only a coalition token takes it"
            raise ValueError(msg)
        if (role == "partner") != (partner_id is not None):
            msg = "a partner token needs --partner, and only a partner token takes it"
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
        now = datetime.now(UTC)
        self.recorder.insert_token(  # type: ignore[attr-defined]
            hash_token(token),
            StoredToken(name.strip(), role, coalition_id, partner_id=partner_id),
            format_instant(now),
            format_instant(now + expires_in) if expires_in is not None else None,
        )
        return token

    def tokens(self) -> list[StoredToken]:
        """Every token issued, oldest first, with its life (never the token itself)."""
        listed: list[StoredToken] = self.recorder.list_tokens()  # type: ignore[attr-defined]
        return listed

    def find(self, name_or_id: str) -> StoredToken:
        """The one token with this id (see ``StoredToken.token_id``) or this name.

        Raises ValueError when none matches, or when several share the name (then say the id).
        """
        wanted = name_or_id.strip()
        by_id = [t for t in self.tokens() if t.token_id == wanted]
        found = by_id or [t for t in self.tokens() if t.name == wanted]
        if not found:
            msg = f"no token is named or numbered {wanted!r} (pledger token list shows them)"
            raise ValueError(msg)
        if len(found) > 1:
            ids = ", ".join(t.token_id for t in found)
            msg = f"{len(found)} tokens are named {wanted!r}; say which by its id: {ids}"
            raise ValueError(msg)
        return found[0]

    def revoke(self, name_or_id: str) -> StoredToken:
        """Withdraw a token (and so its sessions and its calendar feed): refused at once in this
        process and within ``REMEMBER_SECONDS`` in every other. Raises ValueError as ``find``."""
        token = self.find(name_or_id)
        at = format_instant(datetime.now(UTC))
        self.recorder.revoke_token(token.token_hash, at)  # type: ignore[attr-defined]
        self._known.pop(token.token_hash, None)
        return replace(token, revoked_at=at)

    def open_feed(self, name_or_id: str) -> str:
        """A new calendar feed secret for a token (any earlier one stops working): the agenda
        alone, read by URL. Raises ValueError as ``find``, or for a token that cannot read the
        agenda (coalition) or is no longer valid."""
        token = self.find(name_or_id)
        if token.role not in ("steward", "viewer"):
            msg = "only a steward's or a viewer's token reads the agenda, so only they get a feed"
            raise ValueError(msg)
        if token.revoked_at or _expired(token):
            msg = f"token {token.token_id} is no longer valid; a feed needs a valid token"
            raise ValueError(msg)
        secret = FEED_PREFIX + secrets.token_urlsafe(32)
        self.recorder.set_feed(token.token_hash, hash_token(secret))  # type: ignore[attr-defined]
        return secret

    def close_feed(self, name_or_id: str) -> StoredToken:
        """Withdraw a token's calendar feed (the token itself stays valid)."""
        token = self.find(name_or_id)
        self.recorder.set_feed(token.token_hash, None)  # type: ignore[attr-defined]
        return token

    def authenticate_feed(self, secret: str) -> Principal:
        """The holder of a calendar feed's secret; raises Unauthorized when the feed, or its
        token, is no longer valid."""
        stored: StoredToken | None = self.recorder.find_feed(hash_token(secret))  # type: ignore[attr-defined]
        if stored is None:
            raise Unauthorized("This calendar feed is not valid for this ledger (withdrawn?).")
        return self.authenticate_hash(stored.token_hash)

    def open_session(self, token: str) -> str:
        """A web session for a valid token: its id, for the (signed) cookie to carry. Raises
        Unauthorized as ``authenticate_hash``."""
        token_hash = hash_token(token.strip())
        self.authenticate_hash(token_hash)
        session_id = secrets.token_urlsafe(24)
        self.recorder.open_session(session_id, token_hash, format_instant(datetime.now(UTC)))  # type: ignore[attr-defined]
        return session_id

    def end_session(self, session_id: str) -> None:
        """Sign out: the session stops working on the server, whatever copies of the cookie
        remain (at once here, within ``REMEMBER_SECONDS`` in other processes)."""
        self.recorder.end_session(session_id, format_instant(datetime.now(UTC)))  # type: ignore[attr-defined]
        self._sessions.pop(session_id, None)

    def session_holder(self, session_id: str) -> Principal:
        """Who a web session belongs to. Raises Unauthorized when the session was ended or is
        unknown, or its token is no longer valid."""
        known = self._sessions.get(session_id)
        if known is not None and self.clock() - known[0] < REMEMBER_SECONDS:
            return self.authenticate_hash(known[1])
        token_hash: str | None = self.recorder.session_token(session_id)  # type: ignore[attr-defined]
        if token_hash is None:
            raise Unauthorized("This session has ended; sign in again.")
        self._sessions[session_id] = (self.clock(), token_hash)
        return self.authenticate_hash(token_hash)

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
        if known is not None and self.clock() - known[0] < REMEMBER_SECONDS:
            return known[1]
        stored: StoredToken | None = self.recorder.find_token(presented)  # type: ignore[attr-defined]
        # The lookup is by hash; compare again in constant time before trusting it.
        if stored is None or not hmac.compare_digest(presented, stored.token_hash):
            raise Unauthorized("This token is not valid for this ledger.")
        if stored.revoked_at:
            raise Unauthorized(f"This token was revoked on {stored.revoked_at[:10]}.")
        if _expired(stored):
            raise Unauthorized(f"This token expired on {str(stored.expires_at)[:10]}.")
        self._touch(stored)
        principal = Principal(
            stored.name,
            stored.role,  # type: ignore[arg-type]
            stored.coalition_id,
            stored.partner_id,
        )
        self._known[presented] = (self.clock(), principal)
        return principal

    def _touch(self, stored: StoredToken) -> None:
        """Note when a token was used, at most once a minute (not a write per request)."""
        now = datetime.now(UTC)
        last = stored.last_used_at
        if last is None or datetime.fromisoformat(last) + TOUCH_EVERY <= now:
            self.recorder.touch_token(stored.token_hash, format_instant(now))  # type: ignore[attr-defined]


def _expired(token: StoredToken) -> bool:
    return token.expires_at is not None and datetime.fromisoformat(
        token.expires_at
    ) <= datetime.now(UTC)
