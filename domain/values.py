"""The shapes of what events carry: enums, limits, ids and one payload model per event type.

Payload models hold types and size limits only. The rules (amounts above zero, due dates not
before the day a commitment was made, ids that must exist...) live in the aggregates, so that
replaying an old event never re-runs a rule that changed since it was recorded.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

__all__ = [
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
    "Direction",
    "EntityId",
    "EntryRetracted",
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


def _refuse_float(value: Any) -> Any:
    # A binary float cannot hold 0.10 exactly: money must arrive as a decimal string.
    if isinstance(value, float):
        msg = 'send money as a decimal string, such as "150.00", not as a JSON number'
        raise ValueError(msg)
    return value


Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
RequiredText = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, strip_whitespace=True)
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]
TextList = Annotated[tuple[Text, ...], Field(max_length=MAX_LIST_ITEMS)]
EntityId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Money = Annotated[Decimal, BeforeValidator(_refuse_float)]
CurrencyCode = Annotated[str, StringConstraints(min_length=3, max_length=3)]


class EventData(BaseModel):
    """The fields an event type carries besides the common ones; also the command's body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    TYPE: ClassVar[str]
    # Fields holding personal data (names, free text about people), for a later erasure tool.
    PERSONAL_FIELDS: ClassVar[tuple[str, ...]] = ()


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: Annotated[tuple[Channel, ...], Field(max_length=MAX_LIST_ITEMS)] = ()
    language: Annotated[str, StringConstraints(max_length=100)] | None = None
    accessibility: TextList = ()
    gratitude: TextList = ()


class PartnerRegistered(EventData):
    TYPE = "partner_registered"
    PERSONAL_FIELDS = ("name",)

    name: Name
    kind: PartnerKind
    roles: TextList = ()
    communities: TextList = ()
    region: Text | None = None
    referred_by: UUID | None = None
    preferences: Preferences = Preferences()


class ProfileUpdated(EventData):
    TYPE = "profile_updated"
    PERSONAL_FIELDS = ("name",)

    name: Name | None = None
    kind: PartnerKind | None = None
    roles: TextList | None = None
    communities: TextList | None = None
    region: Text | None = None
    referred_by: UUID | None = None
    preferences: Preferences | None = None


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
    due_on: date
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
    due_on: date
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

    title: RequiredText
    kind: AgreementKind
    effective_on: date
    ends_on: date | None = None


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
