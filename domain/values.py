"""The shapes of what events carry: enums, limits, ids and one payload model per event type.

Payload models hold types, size limits and the grammar of what may come in. The rules (amounts
above zero, due dates not before the day a commitment was made, ids that must exist...) live in
the aggregates, so that replaying an old event never re-runs a rule that changed since it was
recorded.

The grammar is checked at the door only: every text field refuses control characters, names
also refuse bidirectional controls, amounts are plain decimal digits and dates ``YYYY-MM-DD``.
An API body and a CSV cell are validated alike (without a context); the mapper reads stored
events back with :data:`FROM_STORE` as the validation context, which skips these checks, so
an event recorded before a check existed still decodes exactly as it was recorded.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, ClassVar
from uuid import UUID

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from domain.dates import read_day

__all__ = [
    "AMOUNT_PATTERN",
    "DATE_PATTERN",
    "FROM_STORE",
    "ID_PATTERN",
    "MAX_LIST_ITEMS",
    "MAX_TEXT_CHARS",
    "AgreementKind",
    "AgreementSigned",
    "Channel",
    "CheckinCadenceAgreed",
    "CoalitionFormed",
    "CommitmentCancelled",
    "CommitmentFulfilled",
    "CommitmentMade",
    "CommitmentRenegotiated",
    "ContactMade",
    "ContactPerson",
    "Contacts",
    "Direction",
    "EntityId",
    "EntryRetracted",
    "ErasedFields",
    "ErasureReason",
    "EventData",
    "FeedbackReceived",
    "Location",
    "MeetingHeld",
    "MeetingKind",
    "MemberJoined",
    "MemberLeft",
    "OutcomeShared",
    "PartnerKind",
    "PartnerRegistered",
    "PaymentMade",
    "PaymentPurpose",
    "PersonalDataErased",
    "Preferences",
    "ProfileUpdated",
    "Resource",
    "Severity",
    "Side",
    "Stage",
    "StageChanged",
    "ThanksExpressed",
    "ThanksForm",
    "TrustBreachRecorded",
    "TrustRepaired",
    "bidi_control_problem",
    "control_problem",
    "name_key",
    "search_key",
    "show_controls",
]

MAX_TEXT_CHARS = 10_000
MAX_LIST_ITEMS = 100
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


class Side(StrEnum):
    US = "us"
    PARTNER = "partner"


class PartnerKind(StrEnum):
    ORGANIZATION = "organization"
    INDIVIDUAL = "individual"


class Channel(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    TEXT = "text"
    IN_PERSON = "in_person"
    VIDEO = "video"
    SOCIAL_MEDIA = "social_media"
    LETTER = "letter"


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class MeetingKind(StrEnum):
    LISTENING_SESSION = "listening_session"
    CHECK_IN = "check_in"
    PLANNING = "planning"
    INFORMAL = "informal"
    EVENT = "event"


class Location(StrEnum):
    THEIRS = "theirs"
    OURS = "ours"
    NEUTRAL = "neutral"
    VIRTUAL = "virtual"


class Resource(StrEnum):
    FINANCIAL = "financial"
    PERSONNEL = "personnel"
    IN_KIND = "in_kind"
    DELIVERABLE = "deliverable"
    TIME = "time"


class PaymentPurpose(StrEnum):
    COMPENSATION = "compensation"
    STIPEND = "stipend"
    GRANT = "grant"
    REIMBURSEMENT = "reimbursement"
    OTHER = "other"


class ThanksForm(StrEnum):
    NOTE = "note"
    PUBLIC_ACKNOWLEDGMENT = "public_acknowledgment"
    CALL = "call"
    EMAIL = "email"
    GIFT = "gift"
    OTHER = "other"


class Severity(StrEnum):
    MINOR = "minor"
    MODERATE = "moderate"
    SEVERE = "severe"


class Stage(StrEnum):
    PROSPECT = "prospect"
    EXPLORING = "exploring"
    PARTNERSHIP = "partnership"
    COORDINATION = "coordination"
    COLLABORATION = "collaboration"
    PAUSED = "paused"
    ENDED = "ended"


class AgreementKind(StrEnum):
    MOU = "mou"
    CONTRACT = "contract"
    LETTER = "letter"


# One grammar for the API and CSV files alike. ASCII digits only: "[0-9]", never "\d", which
# would take other scripts' digits; and fullmatch, never "$", which allows a final newline.
AMOUNT_PATTERN = r"[0-9]+(\.[0-9]+)?"
DATE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
# A telephone number as people write one: digits with the usual marks (+, spaces, dots, dashes,
# slashes, parentheses), then an optional extension ("x 12", "ext. 12"), 3 to 20 digits in all.
PHONE_PATTERN = r"\+?[0-9 ().\-/]+((x|ext\.?) ?[0-9]+)?"
_PHONE = re.compile(PHONE_PATTERN, re.IGNORECASE)
_AMOUNT = re.compile(AMOUNT_PATTERN)


# C0 controls but HT, LF and CR; DEL; C1 controls (Unicode general category Cc, less those three).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Embeddings and overrides (U+202A-U+202E) and isolates (U+2066-U+2069), Unicode TR#9 §2.
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")

FROM_STORE: Mapping[str, bool] = MappingProxyType({"from_store": True})
"""The validation context for a stored event read back: the door's checks do not apply."""


def _at_the_door(info: ValidationInfo) -> bool:
    context = info.context
    return not (isinstance(context, Mapping) and context.get("from_store"))


def control_problem(text: str) -> str | None:
    """Why ``text`` may not be recorded or asked about, or None.

    Refused: C0 controls except tab, line feed and carriage return, DEL, and C1 controls. A NUL
    cannot be stored in a PostgreSQL text value at all, and the others can rewrite a terminal or
    a calendar (RFC 5545 §3.1 allows no control character but HTAB in a value).
    """
    found = _CONTROL.search(text)
    if found is None:
        return None
    return (
        f"holds the control character U+{ord(found.group()):04X} at character "
        f"{found.start() + 1}; remove it (only tab, line feed and carriage return are allowed)"
    )


def _picture(found: re.Match[str]) -> str:
    code = ord(found.group())
    if code < 0x20:
        return chr(0x2400 + code)  # U+2400-U+241F, the Control Pictures block: NUL -> ␀
    return "\u2421" if code == 0x7F else "\ufffd"  # DEL -> ␡; a C1 control has no picture


def show_controls(text: str) -> str:
    """``text`` for a human to read: each control character :func:`control_problem` refuses is
    replaced by a visible stand-in (its Control Picture, such as ␀ or ␛; U+FFFD for C1), so
    that text recorded before the door refused them can neither hide in nor drive a terminal,
    a report or a calendar. Tab, line feed and carriage return are left to each format.
    """
    return _CONTROL.sub(_picture, text)


def name_key(name: str) -> str:
    """What two names are compared by: the same key means the same name to a person.

    Unicode's canonical caseless match (The Unicode Standard §3.13, D145): NFD, case folding,
    NFD again, so that "José" typed as e + U+0301 (as macOS does), "José" with a precomposed
    é and "JOSÉ" are one name. Stored text stays byte-exact; only comparisons use this key.
    """
    decomposed = unicodedata.normalize("NFD", name)
    return unicodedata.normalize("NFD", decomposed.casefold())


def search_key(text: str) -> str:
    """What a search compares: :func:`name_key` under compatibility decomposition (NFKD, so
    that a full-width or ligature letter matches its plain one), without its combining marks,
    so that ``jose`` finds "José Ramírez". Not for telling names apart: that is :func:`name_key`.
    """
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def bidi_control_problem(text: str) -> str | None:
    """Why ``text`` may not be a name, or None: bidirectional embedding, override and isolate
    controls (U+202A-U+202E, U+2066-U+2069, Unicode TR#9) can make one name display as another.
    """
    found = _BIDI_CONTROL.search(text)
    if found is None:
        return None
    return (
        f"holds the bidirectional control U+{ord(found.group()):04X} at character "
        f"{found.start() + 1}; names may not hold U+202A-U+202E or U+2066-U+2069"
    )


def _plain_text(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str) and _at_the_door(info):
        problem = control_problem(value)
        if problem is not None:
            raise PydanticCustomError("control_character", problem)
    return value


def _name_text(value: Any, info: ValidationInfo) -> Any:
    value = _plain_text(value, info)
    if isinstance(value, str) and _at_the_door(info):
        problem = bidi_control_problem(value)
        if problem is not None:
            raise PydanticCustomError("bidi_control", problem)
    return value


def _amount_text(value: Any, info: ValidationInfo) -> Any:
    """An amount as sent: a decimal string of ASCII digits, nothing else (a Decimal from code)."""
    if isinstance(value, Decimal) or not _at_the_door(info):
        return value
    if isinstance(value, int | float):
        # A binary float cannot hold 0.10 exactly: money must arrive as a decimal string.
        msg = 'send money as a decimal string, such as "150.00", not as a JSON number'
        raise PydanticCustomError("decimal_type", msg)
    if not isinstance(value, str) or _AMOUNT.fullmatch(value) is None:
        msg = (
            "write an amount as digits with an optional fraction after a point, "
            'such as "150" or "1250.50" (no sign, spaces, separators or exponent)'
        )
        raise PydanticCustomError("decimal_format", msg)
    return value


def _date_text(value: Any, info: ValidationInfo) -> Any:
    """A date as sent: ``2026-03-31`` (a ``date`` from code), in the one grammar of
    ``domain.dates``; never a number or a timestamp."""
    if isinstance(value, date) or not _at_the_door(info):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("date_format", "write a date like 2026-03-15")
    try:
        return read_day(value)
    except ValueError as refused:
        raise PydanticCustomError("date_format", str(refused)) from None


def _email_text(value: Any, info: ValidationInfo) -> Any:
    """An email address's shape (RFC 5322 §3.4.1 as the ``email-validator`` library reads it,
    internationalized domains included); no DNS look-up, and the text is kept as written."""
    value = _plain_text(value, info)
    if not isinstance(value, str) or not _at_the_door(info):
        return value
    value = value.strip()
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        reason = str(error).rstrip(".")
        msg = f"{value!r} is not an email address ({reason}); write one like name@example.org"
        raise PydanticCustomError("email_format", msg) from None
    return value


def _phone_text(value: Any, info: ValidationInfo) -> Any:
    """A phone number's shape: digits and the marks people write between them."""
    value = _plain_text(value, info)
    if not isinstance(value, str) or not _at_the_door(info):
        return value
    value = value.strip()
    digits = sum(char in "0123456789" for char in value)
    if _PHONE.fullmatch(value) is None or not 3 <= digits <= 20:
        msg = (
            f"{value!r} is not a phone number; write digits, optionally with + ( ) - . and "
            "an extension, such as +1 559 555 0123 or (559) 555-0123 x 12"
        )
        raise PydanticCustomError("phone_format", msg)
    return value


Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS), BeforeValidator(_plain_text)]
Email = Annotated[str, StringConstraints(max_length=320), BeforeValidator(_email_text)]
Phone = Annotated[str, StringConstraints(max_length=100), BeforeValidator(_phone_text)]
RequiredText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, strip_whitespace=True),
    BeforeValidator(_plain_text),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=500, strip_whitespace=True),
    BeforeValidator(_name_text),
]
TextList = Annotated[tuple[Text, ...], Field(max_length=MAX_LIST_ITEMS)]
EntityId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
# What OpenAPI documents: a string of the grammar (pydantic would also offer a JSON number).
Money = Annotated[
    Decimal,
    BeforeValidator(_amount_text),
    WithJsonSchema({"type": "string", "pattern": f"^{AMOUNT_PATTERN}$", "examples": ["150.00"]}),
]
CurrencyCode = Annotated[
    str, StringConstraints(min_length=3, max_length=3), BeforeValidator(_plain_text)
]
Day = Annotated[date, BeforeValidator(_date_text)]


class EventData(BaseModel):
    """The fields an event type carries besides the common ones; also the command's body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    TYPE: ClassVar[str]
    # Fields holding personal data (names, contact details, accessibility needs, languages and
    # communities, free text about people): hashed as salted commitments and kept, encrypted
    # per data subject, outside the event, so that erasure leaves every hash standing
    # (domain.personal, issue 16).
    PERSONAL_FIELDS: ClassVar[tuple[str, ...]] = ()
    # False for an event a use case records by itself, never sent as an ordinary event.
    ORDINARY: ClassVar[bool] = True

    def subject_of(self, stream_id: UUID) -> str:
        """The data subject of this event's personal fields: the partner whose stream it is on
        (a payload about another partner says so). A contact person of an organization would
        be a subject of their own here, named ``<partner id>/<person>``."""
        return str(stream_id)


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: Annotated[tuple[Channel, ...], Field(max_length=MAX_LIST_ITEMS)] = ()
    language: (
        Annotated[str, StringConstraints(max_length=100), BeforeValidator(_plain_text)] | None
    ) = None
    accessibility: TextList = ()
    gratitude: TextList = ()


class ContactPerson(BaseModel):
    """Someone to reach at an organization: a name, and optionally a role, email and phone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    role: Text | None = None
    email: Email | None = None
    phone: Phone | None = None


class Contacts(BaseModel):
    """How to reach a partner (personal data, SPEC §2): emails, phones, a postal address and,
    for an organization, named contact people."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    emails: Annotated[tuple[Email, ...], Field(max_length=MAX_LIST_ITEMS)] = ()
    phones: Annotated[tuple[Phone, ...], Field(max_length=MAX_LIST_ITEMS)] = ()
    address: Text | None = None
    people: Annotated[tuple[ContactPerson, ...], Field(max_length=MAX_LIST_ITEMS)] = ()


class _WithContacts(EventData):
    """A profile event that may carry ``contacts``. Left out when not given, so that an event
    recorded before contacts existed dumps (and so hashes, SPEC §5) exactly as it did."""

    @model_serializer(mode="wrap")
    def _leave_out_absent_contacts(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        if getattr(self, "contacts", None) is None:
            dumped.pop("contacts", None)
        return dumped


class PartnerRegistered(_WithContacts):
    TYPE = "partner_registered"
    PERSONAL_FIELDS = ("name", "communities", "preferences", "contacts")

    name: Name
    kind: PartnerKind
    roles: TextList = ()
    communities: TextList = ()
    region: Text | None = None
    referred_by: UUID | None = None
    preferences: Preferences = Preferences()
    contacts: Contacts | None = None


class ProfileUpdated(_WithContacts):
    TYPE = "profile_updated"
    PERSONAL_FIELDS = ("name", "communities", "preferences", "contacts")

    name: Name | None = None
    kind: PartnerKind | None = None
    roles: TextList | None = None
    communities: TextList | None = None
    region: Text | None = None
    referred_by: UUID | None = None
    preferences: Preferences | None = None
    contacts: Contacts | None = None


class ContactMade(EventData):
    TYPE = "contact_made"
    PERSONAL_FIELDS = ("summary",)

    channel: Channel
    direction: Direction
    summary: Text = ""


class MeetingHeld(EventData):
    TYPE = "meeting_held"
    PERSONAL_FIELDS = ("summary", "attendees")

    kind: MeetingKind
    location: Location
    summary: Text = ""
    attendees: TextList = ()


class CheckinCadenceAgreed(EventData):
    TYPE = "checkin_cadence_agreed"

    every_days: Annotated[int, Field(ge=1, le=366, strict=True)]


class CommitmentMade(EventData):
    TYPE = "commitment_made"
    PERSONAL_FIELDS = ("description",)

    commitment_id: EntityId | None = None
    owed_by: Side
    description: RequiredText
    due_on: Day
    resource: Resource
    amount: Money | None = None
    currency: CurrencyCode | None = None
    coalition_id: UUID | None = None


class CommitmentFulfilled(EventData):
    TYPE = "commitment_fulfilled"
    PERSONAL_FIELDS = ("note",)

    commitment_id: EntityId
    note: Text = ""


class CommitmentRenegotiated(EventData):
    TYPE = "commitment_renegotiated"
    PERSONAL_FIELDS = ("note",)

    commitment_id: EntityId
    due_on: Day
    note: Text = ""


class CommitmentCancelled(EventData):
    TYPE = "commitment_cancelled"
    PERSONAL_FIELDS = ("reason",)

    commitment_id: EntityId
    reason: Text = ""


class PaymentMade(EventData):
    TYPE = "payment_made"

    amount: Money
    currency: CurrencyCode
    purpose: PaymentPurpose
    commitment_id: EntityId | None = None


class ThanksExpressed(EventData):
    TYPE = "thanks_expressed"
    PERSONAL_FIELDS = ("note",)

    form: ThanksForm
    for_commitment_id: EntityId | None = None
    note: Text = ""


class FeedbackReceived(EventData):
    TYPE = "feedback_received"
    PERSONAL_FIELDS = ("summary",)

    feedback_id: EntityId | None = None
    summary: Text = ""


class OutcomeShared(EventData):
    TYPE = "outcome_shared"
    PERSONAL_FIELDS = ("summary",)

    summary: Text = ""
    feedback_id: EntityId | None = None


class TrustBreachRecorded(EventData):
    TYPE = "trust_breach_recorded"
    PERSONAL_FIELDS = ("description",)

    breach_id: EntityId | None = None
    severity: Severity
    caused_by: Side
    description: RequiredText


class TrustRepaired(EventData):
    TYPE = "trust_repaired"
    PERSONAL_FIELDS = ("summary",)

    breach_id: EntityId
    summary: Text = ""


class StageChanged(EventData):
    TYPE = "stage_changed"
    PERSONAL_FIELDS = ("reason",)

    stage: Stage
    reason: Text = ""


class AgreementSigned(EventData):
    TYPE = "agreement_signed"
    PERSONAL_FIELDS = ("title",)

    title: RequiredText
    kind: AgreementKind
    effective_on: Day
    ends_on: Day | None = None


class EntryRetracted(EventData):
    TYPE = "entry_retracted"
    PERSONAL_FIELDS = ("reason",)

    version: Annotated[int, Field(ge=1, strict=True)]
    reason: RequiredText


class CoalitionFormed(EventData):
    TYPE = "coalition_formed"

    name: Name
    shared_vision: Text = ""
    agreed_measures: TextList = ()


class MemberJoined(EventData):
    TYPE = "member_joined"

    partner_id: UUID


class MemberLeft(EventData):
    TYPE = "member_left"
    PERSONAL_FIELDS = ("reason",)

    partner_id: UUID
    reason: Text = ""

    def subject_of(self, stream_id: UUID) -> str:  # noqa: ARG002 - the member is the subject
        return str(self.partner_id)


class ErasureReason(StrEnum):
    """Why personal data was erased: a category, never free text (it could hold personal data)."""

    REQUEST = "request"  # the person asked (GDPR Art. 17(1), PIPEDA Principle 4.5, CCPA §1798.105)
    CONSENT_WITHDRAWN = "consent_withdrawn"
    RETENTION = "retention"  # the retention period after the relationship ended ran out
    LEGAL_OBLIGATION = "legal_obligation"
    OTHER = "other"


class ErasedFields(BaseModel):
    """Which personal fields of which event were shredded (names only, no content)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stream_id: UUID
    version: Annotated[int, Field(ge=1, strict=True)]
    fields: tuple[EntityId, ...]


class PersonalDataErased(EventData):
    """Recorded by erasure only (never sent as an ordinary event, SPEC §2)."""

    TYPE = "personal_data_erased"
    ORDINARY = False

    reason: ErasureReason
    fields: tuple[ErasedFields, ...] = ()
    # The person key (domain.personal) of the one contact person erased; left out when the
    # whole partner's personal data was, so that earlier erasures dump (and hash) as they did.
    contact: EntityId | None = None

    @model_serializer(mode="wrap")
    def _leave_out_whole_partner(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        if self.contact is None:
            dumped.pop("contact", None)
        return dumped
