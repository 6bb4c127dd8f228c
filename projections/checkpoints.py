"""Signed checkpoints (issue 15 item 2): the ledger's Ed25519 key signs what the views hold.

A checkpoint states, at a log position, how many events the log held up to there
(``tree_size``), the ledger digest over them (SPEC §5), the Merkle tree head over their hashes
(RFC 9162 §2.1, ``domain.merkle``) and when it was made; the signature is Ed25519 (RFC 8032,
through the ``cryptography`` package) over the statement's canonical JSON, the same encoding
as an event's hash (sorted keys, no spaces, UTF-8):

    {"digest":"…","position":12,"time":"2026-01-05T15:00:00.000000Z","tree_head":"…","tree_size":12}

Published as that object with ``signature`` (64 bytes, hex) and ``public_key`` (the raw 32-byte
Ed25519 key, hex) added. A report is signed the same way, over the SHA-256 of its bytes.

The private key lives in a file outside the database (PKCS#8 PEM, mode 0600, made on first use;
see ``api.settings.Settings.signing_key_path``): whoever can rewrite the database cannot sign
a checkpoint for the rewritten log, and a checkpoint kept outside the ledger (emailed to the
coalition) then shows the rewrite (``pledger verify --checkpoint FILE``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from domain.hashing import format_instant
from projections.store import LedgerView

__all__ = [
    "Checkpoint",
    "Checkpoints",
    "SigningKey",
    "SigningKeyError",
    "report_signature",
    "verify_signature",
]

CHECKPOINT_FIELDS = ("position", "tree_size", "digest", "tree_head", "time")


class SigningKeyError(Exception):
    """The signing key file cannot be used: unreadable, not an Ed25519 key, or readable by
    others than its owner. The message names the file and what to do."""


class SigningKey:
    """The ledger's Ed25519 private key, from its file (made there on first use)."""

    def __init__(self, private: Ed25519PrivateKey, path: Path) -> None:
        self._private = private
        self.path = path

    @classmethod
    def open(cls, path: Path) -> SigningKey:
        """The key in ``path``; a new one written there (mode 0600, its folder made) when
        there is none. Raises ``SigningKeyError`` for a file readable by group or others
        (``chmod 600`` it) or one that holds no Ed25519 private key."""
        try:
            return cls(cls._read(path), path)
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            # O_EXCL: two processes starting together keep the one key the first wrote.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls(cls._read(path), path)
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
        return cls(cls._read(path), path)

    @staticmethod
    def _read(path: Path) -> Ed25519PrivateKey:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            msg = (
                f"the signing key {path} can be read by others (mode {stat.filemode(mode)}): "
                f"run `chmod 600 {path}`"
            )
            raise SigningKeyError(msg)
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as error:
            msg = f"{path} holds no usable private key: {error}"
            raise SigningKeyError(msg) from None
        if not isinstance(key, Ed25519PrivateKey):
            msg = f"{path} holds a {type(key).__name__}, not an Ed25519 private key"
            raise SigningKeyError(msg)
        return key

    @property
    def public_key(self) -> str:
        """The raw 32-byte Ed25519 public key, hex (64 characters)."""
        return (
            self._private.public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            .hex()
        )

    def sign(self, message: bytes) -> str:
        """The Ed25519 signature of ``message``: 64 bytes, hex."""
        return self._private.sign(message).hex()


def verify_signature(public_key: str, signature: str, message: bytes) -> bool:
    """Whether ``signature`` (lowercase hex) is the Ed25519 signature of ``message`` by
    ``public_key`` (raw, lowercase hex); False for anything malformed."""
    try:
        key_bytes, signature_bytes = bytes.fromhex(public_key), bytes.fromhex(signature)
        if (key_bytes.hex(), signature_bytes.hex()) != (public_key, signature):
            return False  # only lowercase hex, so that one signature has one spelling
        Ed25519PublicKey.from_public_bytes(key_bytes).verify(signature_bytes, message)
    except (ValueError, InvalidSignature):
        return False
    return True


def report_signature(key: SigningKey, body: bytes) -> tuple[str, str]:
    """``(sha256 hex, signature hex)`` of a report's bytes: Ed25519 over the 32-byte SHA-256
    digest of the body, so the body itself stays byte for byte what it was."""
    digest = hashlib.sha256(body).digest()
    return digest.hex(), key.sign(digest)


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the log at ``position`` (see the module's docstring)."""

    position: int
    tree_size: int
    digest: str
    tree_head: str
    time: str
    signature: str = ""

    def statement(self) -> bytes:
        """The signed bytes: the canonical JSON of the five stated fields."""
        return orjson.dumps(
            {name: getattr(self, name) for name in CHECKPOINT_FIELDS}, option=orjson.OPT_SORT_KEYS
        )

    def as_dict(self, public_key: str) -> dict[str, Any]:
        return {**asdict(self), "public_key": public_key}

    @classmethod
    def from_dict(cls, document: Any) -> Checkpoint:
        """A checkpoint from its published JSON; raises ValueError naming the field at fault."""
        if not isinstance(document, dict):
            msg = "a checkpoint is a JSON object"
            raise ValueError(msg)
        values: dict[str, Any] = {}
        for name, kind in (
            ("position", int),
            ("tree_size", int),
            ("digest", str),
            ("tree_head", str),
            ("time", str),
            ("signature", str),
        ):
            value = document.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                article = "an integer" if kind is int else "a string"
                msg = f"the checkpoint's {name} is missing or not {article}"
                raise ValueError(msg)
            values[name] = value
        return cls(**values)

    def signed_by(self, public_key: str) -> bool:
        return verify_signature(public_key, self.signature, self.statement())


class Checkpoints:
    """The ledger's signed checkpoints, kept in the views' store (``{p}signed_checkpoints``,
    which a rebuild leaves alone: they are statements made, not views of the log)."""

    def __init__(self, view: LedgerView, key: SigningKey) -> None:
        self.view = view
        self.key = key

    def make(self, now: datetime | None = None) -> Checkpoint:
        """Sign the views' current head (the caller brings them up to the log first) and
        keep the checkpoint; returns it."""
        position, digest, events = self.view.chain_head()
        unsigned = Checkpoint(
            position,
            events,
            digest,
            self.view.tree_head(events).hex(),
            format_instant(now or datetime.now(UTC)),
        )
        checkpoint = Checkpoint(
            **{**asdict(unsigned), "signature": self.key.sign(unsigned.statement())}
        )
        with self.view.datastore.transaction(commit=True) as c:
            c.execute(
                self.view._q(
                    "INSERT INTO {p}signed_checkpoints "
                    "(position, tree_size, digest, tree_head, time, signature) "
                    "VALUES (?, ?, ?, ?, ?, ?)"
                ),
                (
                    checkpoint.position,
                    checkpoint.tree_size,
                    checkpoint.digest,
                    checkpoint.tree_head,
                    checkpoint.time,
                    checkpoint.signature,
                ),
            )
        return checkpoint

    def all(self) -> list[Checkpoint]:
        """Every kept checkpoint, oldest first."""
        rows = self.view.select(
            "SELECT position, tree_size, digest, tree_head, time, signature "
            "FROM {p}signed_checkpoints ORDER BY time, position"
        )
        return [Checkpoint(**dict(row)) for row in rows]

    def latest(self) -> Checkpoint | None:
        newest = self.newest(1)
        return newest[0] if newest else None

    def newest(self, count: int) -> list[Checkpoint]:
        """The ``count`` latest checkpoints, newest first (one query, however many are kept)."""
        rows = self.view.select(
            "SELECT position, tree_size, digest, tree_head, time, signature "
            "FROM {p}signed_checkpoints ORDER BY time DESC, position DESC LIMIT ?",
            (count,),
        )
        return [Checkpoint(**dict(row)) for row in rows]

    def covering(self, position: int) -> Checkpoint:
        """The latest checkpoint at or after ``position``; a new one at the views' head when
        none covers it yet (the caller brings the views up to ``position`` first)."""
        rows = self.view.select(
            "SELECT position, tree_size, digest, tree_head, time, signature "
            "FROM {p}signed_checkpoints WHERE position >= ? "
            "ORDER BY time DESC, position DESC LIMIT 1",
            (position,),
        )
        return Checkpoint(**dict(rows[0])) if rows else self.make()

    def make_if_older(self, age: timedelta, now: datetime | None = None) -> Checkpoint | None:
        """The server's daily checkpoint: a new one when the latest is older than ``age`` (or
        there is none) and the log has grown since; else None."""
        now = now or datetime.now(UTC)
        latest = self.latest()
        head_position = self.view.chain_head()[0]
        if head_position == 0:
            return None
        if latest is not None and (
            datetime.fromisoformat(latest.time) > now - age or latest.position == head_position
        ):
            return None
        return self.make(now)
