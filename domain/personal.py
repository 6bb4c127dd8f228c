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

A contact person of an organization (``contacts.people``) is a data subject of their own, so
that their data can be erased while the organization's stays. Each person gets a random
``person key`` (16 hexadecimal digits, kept for as long as their name stays in the partner's
contacts) and a commitment of their own, named ``contacts.people.KEY``; the ``contacts``
commitment covers the contacts with ``people`` as the list of their keys. A person's value is
encrypted under the key of the subject ``PARTNER/KEY``, so erasing one person deletes that
key and those rows only, and the ``personal_data_erased`` event names the person by their
key, which says nothing about them.

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
    "ERASED_PERSON",
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
    "name_key",
    "new_key",
    "people_keys",
    "person_field",
    "placeholder",
    "seal",
    "subject_of_field",
]

FORMAT = 2
CONTENT_ERASED = "content_erased"  # marks a format 1 state overwritten by an erasure
PERSONAL = "personal"  # the member of a format 2 event's data that holds the commitments
SALT_HEX_DIGITS = 32
NONCE_BYTES = 12  # AES-GCM's 96-bit nonce, NIST SP 800-38D §8.2.2 (random, one per row)
ERASED_TEXT = "[erased]"
ERASED_PERSON = "Erased contact person"
PERSON_FIELD = "contacts.people."  # followed by the person key: one contact person's commitment
PERSON_KEY_HEX_DIGITS = 16
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
    the keys and personal rows of ``subject_ids`` (a partner and their contact people, or one
    contact person), and overwrite the stored state of each format 1 event whose personal
    values sit in its hashed content (``rewrites``: (stream id, version, new state))."""

    subject_ids: Sequence[str]
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

    def plaintexts(self, subject_id: str) -> list[tuple[str, bytes]]:
        """``[(subject, plaintext)]``: the personal-data rows of this event, one per data
        subject: ``subject_id`` for the fields about the partner, ``subject_id/KEY`` for each
        contact person's own field."""
        rows: dict[str, dict[str, list[Any]]] = {}
        for name, (salt, value) in self.disclosed.items():
            owner = subject_of_field(name, subject_id)
            rows.setdefault(owner, {})[name] = [salt, value]
        return [(owner, orjson.dumps(values)) for owner, values in rows.items()]

    def mismatches(self) -> list[str]:
        """The disclosed fields whose value and salt do not give their commitment."""
        return [
            name
            for name, (salt, value) in sorted(self.disclosed.items())
            if commitment(salt, value) != self.commitments.get(name)
        ]


def person_field(key: str) -> str:
    """The commitment name of the contact person with person key ``key``."""
    return f"{PERSON_FIELD}{key}"


def subject_of_field(name: str, subject_id: str) -> str:
    """The data subject of a committed field: the contact person's own for theirs."""
    if name.startswith(PERSON_FIELD):
        return f"{subject_id}/{name.removeprefix(PERSON_FIELD)}"
    return subject_id


def name_key(name: str) -> str:
    """A contact person's name as person keys are kept by: spaces and case aside."""
    return " ".join(name.split()).casefold()


def _split_people(
    contacts: Mapping[str, Any], known: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The contacts with each person replaced by their key, and ``{field: person}``: a person
    keeps the key ``known`` gives their name (spaces and case aside), others get a new one."""
    keys: list[str] = []
    people: dict[str, Any] = {}
    for person in contacts.get("people") or ():
        key = known.get(name_key(str(person.get("name", ""))))
        if key is None or key in keys:
            key = secrets.token_hex(PERSON_KEY_HEX_DIGITS // 2)
        keys.append(key)
        people[person_field(key)] = person
    return {**contacts, "people": keys}, people


def people_keys(disclosed: Disclosed) -> tuple[str, ...]:
    """The person keys of the contact people an event's disclosed ``contacts`` hold, in the
    order of ``people`` (none for contacts recorded before people had keys, or erased)."""
    found = disclosed.get("contacts")
    people = found[1].get("people") if found is not None and isinstance(found[1], Mapping) else ()
    return tuple(p for p in people or () if isinstance(p, str))


def seal(
    data: Mapping[str, Any], fields: Iterable[str], known: Mapping[str, str] | None = None
) -> Seal | None:
    """Commit each non-empty field of ``fields`` in ``data`` (the payload as JSON) under a
    fresh random salt, each contact person of ``contacts`` apart under their person key
    (``known``: name -> key of the people already on record); None when there is nothing to
    commit (the data is hashed as it is)."""
    chosen = {name: data[name] for name in fields if _committed(data.get(name))}
    contacts = chosen.get("contacts")
    if isinstance(contacts, Mapping) and contacts.get("people"):
        chosen["contacts"], people = _split_people(contacts, known or {})
        chosen.update(people)
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
    if name.startswith(PERSON_FIELD):
        return {"name": ERASED_PERSON, "role": None, "email": None, "phone": None}
    return _EMPTY.get(name, ERASED_TEXT)


def disclose(data: dict[str, Any], disclosed: Disclosed | None, subject_id: str) -> dict[str, Any]:
    """A stored event's data as readers see it: format 1 as it is; format 2 with each committed
    field's value back in its place, or its placeholder when the subject was erased (a
    contact person's within the contacts, in their place in ``people``)."""
    personal = data.get(PERSONAL)
    if not isinstance(personal, Mapping):
        return data
    shown = {k: v for k, v in data.items() if k != PERSONAL}

    def value(name: str) -> Any:
        found = disclosed.get(name) if disclosed else None
        return found[1] if found is not None else placeholder(name, subject_id)

    for name in personal["commitments"]:
        if not name.startswith(PERSON_FIELD):
            shown[name] = value(name)
    contacts = shown.get("contacts")
    if isinstance(contacts, Mapping) and any(
        isinstance(p, str) for p in contacts.get("people") or ()
    ):
        people = [value(person_field(key)) for key in contacts["people"]]
        shown["contacts"] = {**contacts, "people": people}
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
        """The disclosed rows of ``count`` events (parameters: :meth:`event_params`).

        A join from the wanted events, which each store plans as a primary-key lookup an
        event: ``(id, version) IN (VALUES ...)`` was planned as a scan of the whole table for
        every statement (SQLite, and PostgreSQL with a hash join), which made reading a log's
        personal values quadratic in its size: most of a rebuild's time."""
        if self.postgres:
            wanted = "unnest(%s::text[], %s::int[])"
        else:
            wanted = f"(VALUES {', '.join(['(?, ?)'] * count)})"
        return (
            f"WITH w (originator_id, originator_version) AS (SELECT * FROM {wanted}) "
            "SELECT d.originator_id, d.originator_version, d.subject_id, d.nonce, d.sealed, "
            f"k.key FROM w JOIN {self.rows} d ON d.originator_id = w.originator_id "
            "AND d.originator_version = w.originator_version "
            f"JOIN {self.keys} k ON k.subject_id = d.subject_id"
        )

    def event_params(self, pairs: Sequence[tuple[str, int]]) -> list[Any]:
        """The parameters of :meth:`events_statement` for these (stream id, version): on
        SQLite each pair's two values in turn, on PostgreSQL an array of ids and one of
        versions."""
        if self.postgres:
            return [[stream_id for stream_id, _ in pairs], [version for _, version in pairs]]
        return [item for pair in pairs for item in pair]

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
