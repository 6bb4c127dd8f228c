"""Personal data kept apart from the events, so that it can be erased (GDPR Art. 17) while every
hash, chain and the digest still verify (SPEC §5, issue 16).

An event's hashed ``data`` (format 2) holds each non-empty personal field of its payload model
(``EventData.PERSONAL_FIELDS``) as a salted commitment instead of its value::

    "data": {...the other fields..., "personal": {"format": 2, "commitments": {FIELD: HEX}}}
    commitment = sha256_hex(utf8(salt) + canonical_json(value))

``salt`` is 32 random hexadecimal digits per field and ``canonical_json`` the same JSON the
event hash uses (sorted keys, no spaces, UTF-8). The value and its salt live in the
personal-data table, encrypted with AES-GCM (NIST SP 800-38D) under a 256-bit key of the data
subject's own, with the event's (stream, version, subject) as associated data. Erasure deletes
the subject's key and rows in the transaction that records ``personal_data_erased``: the events
stay as they were, and copies of the rows in backups can no longer be read.

Readers never see the commitments: :func:`disclose` puts each value back (or, once erased, a
neutral placeholder) where the payload model expects it. Events without a ``personal`` member
are format 1 (recorded before this, or with no personal value): their data is hashed as shown.

This module imports only the standard library, orjson and ``cryptography``, so that the
rebuild's worker processes stay quick to start.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "CONTENT_ERASED",
    "ERASED_TEXT",
    "FORMAT",
    "PERSONAL",
    "Disclosed",
    "Erasure",
    "Seal",
    "Vault",
    "canonical_json",
    "commitment",
    "disclose",
    "erased_name",
    "new_key",
    "placeholder",
    "seal",
]

FORMAT = 2
CONTENT_ERASED = "content_erased"  # marks a format 1 state overwritten by an erasure
PERSONAL = "personal"  # the member of a format 2 event's data that holds the commitments
SALT_HEX_DIGITS = 32
NONCE_BYTES = 12  # AES-GCM's 96-bit nonce, NIST SP 800-38D §8.2.2 (random, one per row)
ERASED_TEXT = "[erased]"
# What an erased field reads as, by field name, when it is not text (text reads ERASED_TEXT).
_EMPTY: Mapping[str, Any] = {
    "communities": [],
    "attendees": [],
    "preferences": {},
    "contacts": {},
}

Disclosed = Mapping[str, tuple[str, Any]]  # field -> (salt, value as JSON)


def canonical_json(value: Any) -> bytes:
    """The bytes a value is committed over: JSON with sorted keys, no spaces, UTF-8 (the event
    hash's serialization, SPEC §5)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def commitment(salt: str, value: Any) -> str:
    """SHA-256 (FIPS 180-4), as 64 hexadecimal digits, over the salt's ASCII digits followed
    by the value's canonical JSON."""
    return hashlib.sha256(salt.encode("ascii") + canonical_json(value)).hexdigest()


def _committed(value: Any) -> bool:
    """Whether a personal field's value is committed: empty values (null, "", [], {}) say
    nothing about anyone and stay in the data as they are."""
    return value not in (None, "", [], {})


@dataclass(frozen=True)
class Erasure:
    """What the recorder does with a ``personal_data_erased`` event, in its transaction: delete
    ``subject_id``'s key and personal rows, and overwrite the stored state of each format 1
    event whose personal values sit in its hashed content (``rewrites``: (stream id, version,
    new state))."""

    subject_id: str
    rewrites: Sequence[tuple[str, int, bytes]] = ()


@dataclass(frozen=True)
class Seal:
    """An event's personal fields as its hashed content holds them: ``commitments``
    (field -> hex); ``disclosed`` (field -> (salt, value)) while they are not erased."""

    commitments: Mapping[str, str]
    disclosed: Disclosed = field(default_factory=dict)

    def hashed(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The event's data as hashed and stored: ``data`` (the payload as JSON) with each
        committed field replaced by the ``personal`` member."""
        content = {k: v for k, v in data.items() if k not in self.commitments}
        content[PERSONAL] = {"format": FORMAT, "commitments": dict(self.commitments)}
        return content

    def plaintext(self) -> bytes:
        """What the personal-data table keeps (encrypted) for this event."""
        return orjson.dumps({f: [salt, value] for f, (salt, value) in self.disclosed.items()})

    def mismatches(self) -> list[str]:
        """The disclosed fields whose value and salt do not give their commitment."""
        return [
            name
            for name, (salt, value) in sorted(self.disclosed.items())
            if commitment(salt, value) != self.commitments.get(name)
        ]


def seal(data: Mapping[str, Any], fields: Iterable[str]) -> Seal | None:
    """Commit each non-empty field of ``fields`` in ``data`` (the payload as JSON) under a
    fresh random salt; None when there is nothing to commit (the data is hashed as it is)."""
    chosen = {name: data[name] for name in fields if _committed(data.get(name))}
    if not chosen:
        return None
    salts = {name: secrets.token_hex(SALT_HEX_DIGITS // 2) for name in chosen}
    return Seal(
        {name: commitment(salts[name], value) for name, value in chosen.items()},
        {name: (salts[name], value) for name, value in chosen.items()},
    )


def stored_seal(data: Mapping[str, Any], disclosed: Disclosed | None) -> Seal | None:
    """The seal of a stored event's data, or None for format 1."""
    personal = data.get(PERSONAL)
    if not isinstance(personal, Mapping):
        return None
    return Seal(dict(personal["commitments"]), disclosed or {})


def erased_name(subject_id: str) -> str:
    """The neutral placeholder for an erased person's name: ``Erased partner 4f2a1b2c``."""
    return f"Erased partner {subject_id[:8]}"


def placeholder(name: str, subject_id: str) -> Any:
    """What the field ``name`` reads as once its subject was erased."""
    if name == "name":
        return erased_name(subject_id)
    return _EMPTY.get(name, ERASED_TEXT)


def disclose(data: dict[str, Any], disclosed: Disclosed | None, subject_id: str) -> dict[str, Any]:
    """A stored event's data as readers see it: format 1 as it is; format 2 with each committed
    field's value back in its place, or its placeholder when the subject was erased."""
    personal = data.get(PERSONAL)
    if not isinstance(personal, Mapping):
        return data
    shown = {k: v for k, v in data.items() if k != PERSONAL}
    for name in personal["commitments"]:
        found = disclosed.get(name) if disclosed else None
        shown[name] = found[1] if found is not None else placeholder(name, subject_id)
    return shown


def new_key() -> bytes:
    """A data subject's new 256-bit AES key."""
    return AESGCM.generate_key(bit_length=256)


def _associated(stream_id: str, version: int, subject_id: str) -> bytes:
    return f"{stream_id}/{version}/{subject_id}".encode("ascii")


def encrypt(
    key: bytes, stream_id: str, version: int, subject_id: str, plaintext: bytes
) -> tuple[bytes, bytes]:
    """``(nonce, ciphertext)`` of one event's personal data under its subject's key."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    associated = _associated(stream_id, version, subject_id)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, associated)


def decrypt(
    key: bytes, stream_id: str, version: int, subject_id: str, nonce: bytes, ciphertext: bytes
) -> Disclosed:
    """One event's disclosed fields; raises cryptography's InvalidTag when the row was altered
    or moved to another event or subject."""
    associated = _associated(stream_id, version, subject_id)
    document = orjson.loads(AESGCM(key).decrypt(nonce, ciphertext, associated))
    return {name: (pair[0], pair[1]) for name, pair in document.items()}


@dataclass(frozen=True)
class Vault:
    """The personal-data tables' statements for one store (``postgres`` or SQLite), with the
    table prefix the recorder uses.

        {p}personal_keys  subject_id -> key (one AES-256 key per data subject)
        {p}personal_data  (originator_id, originator_version, subject_id) -> nonce, sealed
    """

    postgres: bool
    prefix: str = ""
    schema: str = ""

    @classmethod
    def of_store(cls, *, postgres: bool, schema: str = "") -> Vault:
        """The ledger's vault: unprefixed on SQLite, ``pledger_`` tables on PostgreSQL (beside
        the API's other tables in the log's database)."""
        return cls(postgres=True, prefix="pledger_", schema=schema) if postgres else cls(False)

    def _name(self, table: str) -> str:
        if self.postgres and self.schema:
            return f'"{self.schema}".{self.prefix}{table}'
        return f"{self.prefix}{table}"

    @property
    def keys(self) -> str:
        return self._name("personal_keys")

    @property
    def rows(self) -> str:
        return self._name("personal_data")

    @property
    def mark(self) -> str:
        return "%s" if self.postgres else "?"

    def create_statements(self) -> list[str]:
        blob = "BYTEA" if self.postgres else "BLOB"
        return [
            f"CREATE TABLE IF NOT EXISTS {self.keys} ("
            f"subject_id TEXT PRIMARY KEY, key {blob} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self.rows} ("
            "originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL, "
            f"subject_id TEXT NOT NULL, nonce {blob} NOT NULL, sealed {blob} NOT NULL, "
            "PRIMARY KEY (originator_id, originator_version, subject_id))",
            f"CREATE INDEX IF NOT EXISTS {self.prefix}personal_data_subject "
            f"ON {self.rows} (subject_id)",
        ]

    def insert_key_statement(self) -> str:
        m = self.mark
        return (
            f"INSERT INTO {self.keys} (subject_id, key) VALUES ({m}, {m}) "
            "ON CONFLICT (subject_id) DO NOTHING"
        )

    def select_key_statement(self) -> str:
        return f"SELECT key FROM {self.keys} WHERE subject_id = {self.mark}"

    def insert_row_statement(self) -> str:
        m = self.mark
        return (
            f"INSERT INTO {self.rows} (originator_id, originator_version, subject_id, nonce, "
            f"sealed) VALUES ({m}, {m}, {m}, {m}, {m}) "
            # A row left by an event deleted behind the ledger's back must not stop the
            # version's next event (whose own insert refuses a version still on record).
            "ON CONFLICT (originator_id, originator_version, subject_id) DO UPDATE "
            "SET nonce = excluded.nonce, sealed = excluded.sealed"
        )

    def shred_statements(self) -> list[str]:
        """Delete a subject's rows and key (one parameter each: the subject id)."""
        return [
            f"DELETE FROM {self.rows} WHERE subject_id = {self.mark}",
            f"DELETE FROM {self.keys} WHERE subject_id = {self.mark}",
        ]

    _SELECT = (
        "SELECT d.originator_id, d.originator_version, d.subject_id, d.nonce, d.sealed, k.key "
        "FROM {rows} d JOIN {keys} k ON k.subject_id = d.subject_id "
    )

    def streams_statement(self, count: int) -> str:
        """Every disclosed row of ``count`` streams (parameters: their ids as text)."""
        marks = ", ".join([self.mark] * count)
        return (
            self._SELECT.format(rows=self.rows, keys=self.keys)
            + f"WHERE d.originator_id IN ({marks})"
        )

    def events_statement(self, count: int) -> str:
        """The disclosed rows of ``count`` events (parameters: stream id, version, ...)."""
        pairs = ", ".join([f"({self.mark}, {self.mark})"] * count)
        return (
            self._SELECT.format(rows=self.rows, keys=self.keys)
            + f"WHERE (d.originator_id, d.originator_version) IN (VALUES {pairs})"
        )

    def subject_statement(self) -> str:
        """Every disclosed row of one subject (the subject access request, GDPR Art. 15)."""
        return (
            self._SELECT.format(rows=self.rows, keys=self.keys)
            + f"WHERE d.subject_id = {self.mark} ORDER BY d.originator_id, d.originator_version"
        )


def decrypt_rows(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, int], Disclosed]:
    """``{(stream id, version): disclosed}`` from rows of the statements above (tuples in
    their column order). Rows of several subjects of one event are merged."""
    found: dict[tuple[str, int], dict[str, tuple[str, Any]]] = {}
    for stream_id, version, subject_id, nonce, sealed, key in rows:
        try:
            values = decrypt(
                bytes(key), stream_id, version, subject_id, bytes(nonce), bytes(sealed)
            )
        except InvalidTag:
            # An altered or moved row reads as not held; verify names the event (its
            # commitments have no values and no erasure names it).
            continue
        found.setdefault((stream_id, version), {}).update(values)
    return dict(found)


def event_pairs(pairs: Sequence[tuple[str, int]]) -> list[Any]:
    """The parameters of :meth:`Vault.events_statement` for these (stream id, version)."""
    return [item for pair in pairs for item in pair]
