"""HTTP schemas: write bodies built from the domain's payload models, and response shapes.

Write bodies are the payload model of their event type plus the common fields every write may
carry (``occurred_at``, ``expected_version``); unknown fields are refused. Responses are
documented here for OpenAPI; handlers return the query results as they are, through orjson.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from domain.dates import DATE_EXAMPLE, read_moment
from domain.serialization import DATA_MODELS
from domain.values import (
    CoalitionFormed,
    ErasureReason,
    EventData,
    MemberJoined,
    Name,
    PartnerRegistered,
    control_problem,
)

__all__ = [
    "EVENT_BODIES",
    "EXAMPLES",
    "AccountabilityPublic",
    "AgendaPublic",
    "CheckpointPublic",
    "CheckpointsPublic",
    "CoalitionCreate",
    "CoalitionPublic",
    "CoalitionsPublic",
    "CommitmentsPublic",
    "ConsistencyProofPublic",
    "EventBody",
    "EventRecordedPublic",
    "EventsPublic",
    "HealthHistoryPublic",
    "HealthPublic",
    "InclusionProofPublic",
    "KeyPublic",
    "MemberCreate",
    "PartnerCreate",
    "PartnerPublic",
    "PartnersPublic",
    "ProblemPublic",
    "RecordedPublic",
    "ReportPublic",
    "ReviewPublic",
    "TimelinePublic",
    "VerifyPublic",
    "VerifyRunningPublic",
]

_PARTNER_EVENT_TYPES = [
    t
    for t, model in DATA_MODELS.items()
    if model.ORDINARY
    and t not in ("partner_registered", "coalition_formed", "member_joined", "member_left")
]

EXAMPLES: dict[str, dict[str, Any]] = {
    "profile_updated": {
        "region": "North Valley",
        "contacts": {"emails": ["info@example.org"], "phones": ["(559) 555-0123"]},
    },
    "contact_made": {
        "channel": "phone",
        "direction": "inbound",
        "summary": "Asked about the stipend.",
    },
    "meeting_held": {
        "kind": "listening_session",
        "location": "theirs",
        "summary": "Listening session at their community hall.",
        "attendees": ["Rosa", "Dev"],
    },
    "checkin_cadence_agreed": {"every_days": 60},
    "commitment_made": {
        "commitment_id": "C-2026-001",
        "owed_by": "us",
        "description": "Stipend for the advisory panel",
        "due_on": "2026-03-01",
        "resource": "financial",
        "amount": "150.00",
        "currency": "USD",
        "coalition_id": None,
    },
    "commitment_fulfilled": {"commitment_id": "C-2026-001", "note": "Paid by cheque."},
    "commitment_renegotiated": {
        "commitment_id": "C-2026-001",
        "due_on": "2026-03-15",
        "note": "Finance needed two more weeks; agreed with them.",
    },
    "commitment_cancelled": {"commitment_id": "C-2026-001", "reason": "Event called off together."},
    "payment_made": {
        "amount": "150.00",
        "currency": "USD",
        "purpose": "stipend",
        "commitment_id": "C-2026-001",
    },
    "thanks_expressed": {"form": "note", "for_commitment_id": None, "note": "Handwritten card."},
    "feedback_received": {"feedback_id": "F-7", "summary": "Meetings should be in the evening."},
    "outcome_shared": {"summary": "We moved meetings to 6pm.", "feedback_id": "F-7"},
    "trust_breach_recorded": {
        "breach_id": "B-1",
        "severity": "moderate",
        "caused_by": "us",
        "description": "Stipend paid six weeks late.",
    },
    "trust_repaired": {"breach_id": "B-1", "summary": "Apologised in person; paid a late fee."},
    "stage_changed": {"stage": "partnership", "reason": "Signed the MOU."},
    "agreement_signed": {
        "title": "Memorandum of understanding",
        "kind": "mou",
        "effective_on": "2026-02-01",
        "ends_on": None,
    },
    "entry_retracted": {"version": 4, "reason": "Recorded on the wrong partner."},
}


def _instant_text(value: Any) -> Any:
    """An instant as sent, in the one grammar of ``domain.dates``: a date, or a date and time
    with or without an offset (those without are left naive, for the write to read in the
    ledger's time zone); never a number nor digits read as Unix seconds (pydantic's lax mode
    would read both)."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        if (problem := control_problem(value)) is not None:
            raise ValueError(problem)
        return read_moment(value, None)  # its ValueError speaks plain words, with an example
    raise ValueError(f"give text: {DATE_EXAMPLE}")  # pydantic makes it a field error (422)


class _CommonCreate(BaseModel):
    """What a write that starts a new stream may carry besides its fields: no
    ``expected_version``, since a new stream has no version to expect (refused as unknown)."""

    occurred_at: Annotated[datetime | None, BeforeValidator(_instant_text)] = Field(
        default=None,
        description="When it happened in the world: a date (the start of that day) or a date "
        "and time, read in the ledger's time zone unless it ends in Z or an offset; default now.",
    )


class _CommonWrite(_CommonCreate):
    # strict: JSON true/false or "3" is not a version (pydantic's lax mode would take them).
    expected_version: int | None = Field(
        default=None,
        ge=0,
        strict=True,
        description="Refuse with 409 unless this is the stream's current version.",
    )


def _body(type_name: str, model: type[EventData]) -> type[BaseModel]:
    title = "".join(part.title() for part in type_name.split("_")) + "Body"
    return create_model(
        title,
        __base__=(model, _CommonWrite),
        type=(Literal[type_name], ...),  # type: ignore[arg-type, unused-ignore]
        __doc__=f"Append a `{type_name}` event.",
    )


def _with_example(model: type[BaseModel], example: dict[str, Any]) -> type[BaseModel]:
    model.model_config["json_schema_extra"] = {"examples": [example]}
    model.model_rebuild(force=True)
    return model


EVENT_BODIES: dict[str, type[BaseModel]] = {
    t: _with_example(_body(t, DATA_MODELS[t]), {"type": t, **EXAMPLES[t]})
    for t in _PARTNER_EVENT_TYPES
}
if TYPE_CHECKING:

    class EventBody(_CommonWrite):
        """What type checkers see: any of the bodies below, each with its ``type`` tag."""

        type: str

else:
    EventBody = Annotated[Union[tuple(EVENT_BODIES.values())], Field(discriminator="type")]  # noqa: UP007


class PartnerCreate(PartnerRegistered, _CommonCreate):
    """Register a partner (the fields of `partner_registered`)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "Eastside Tenants Union",
                    "kind": "organization",
                    "roles": ["advisory_member"],
                    "communities": ["tenants"],
                    "region": "East",
                    "referred_by": None,
                    "preferences": {
                        "channels": ["phone", "in_person"],
                        "language": "es",
                        "accessibility": ["evening meetings"],
                        "gratitude": ["public_acknowledgment"],
                    },
                    "contacts": {
                        "emails": ["office@eastsidetenants.example.org"],
                        "phones": ["+1 559 555 0142"],
                        "address": "412 E Main St, Visalia, CA 93291",
                        "people": [
                            {
                                "name": "Rosa Delgado",
                                "role": "Organizer",
                                "email": "rosa@eastsidetenants.example.org",
                                "phone": "(559) 555-0143",
                            }
                        ],
                    },
                }
            ]
        },
    )


class CoalitionCreate(CoalitionFormed, _CommonCreate):
    """Form a coalition (the fields of `coalition_formed`)."""


class MemberCreate(MemberJoined, _CommonWrite):
    """A partner joins the coalition."""


class ErasureCreate(BaseModel):
    """Erase a partner's personal data (GDPR Art. 17): why, as a category; with ``contact``,
    only that contact person's (their name, or their person key), the organization's other
    data staying."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [{"reason": "request"}, {"reason": "request", "contact": "Ana Ruiz"}]
        },
    )

    reason: ErasureReason
    contact: Name | None = Field(
        default=None,
        description="One contact person of the organization to erase (their name, spaces and "
        "case aside, or their person key); the event names them by their person key only.",
    )


# ---- responses ----------------------------------------------------------------------------


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ProblemPublic(_Open):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None
    field: str | None = Field(default=None, description="The field of the first of `errors`.")
    current_version: int | None = None


class RecordedPublic(_Open):
    """A new stream (partner or coalition) and its first event."""

    id: UUID
    version: int
    position: int
    hash: str
    type: str
    data: dict[str, Any]


class EventRecordedPublic(_Open):
    partner_id: UUID | None = None
    coalition_id: UUID | None = None
    version: int
    position: int
    hash: str
    type: str
    data: dict[str, Any]


class _Reference(_Open):
    as_of: str
    position: int
    time_zone: str = Field(
        description="The ledger's IANA time zone (PLEDGER_TIMEZONE), where the answer's "
        "calendar days are counted (SPEC §3)."
    )


class PartnerPublic(_Reference):
    id: str
    name: str
    kind: str
    roles: list[str]
    communities: list[str]
    region: str | None
    referred_by: str | None
    preferences: dict[str, Any]
    contacts: dict[str, Any] = Field(
        description="emails, phones, postal address and contact people (personal data)"
    )
    stage: str
    cadence_days: int
    registered_at: str | None
    last_touch_at: str | None
    version: int


class HealthBrief(BaseModel):
    score: int
    band: Literal["thriving", "steady", "at_risk", "critical"]


class PartnerListItem(_Open):
    id: str
    name: str
    stage: str
    health: HealthBrief


class PartnersPublic(_Reference):
    sort: str
    order: Literal["asc", "desc"]
    partners: list[PartnerListItem]
    next_cursor: str | None


class TimelineItem(BaseModel):
    position: int
    version: int
    type: str
    occurred_at: str
    recorded_at: str
    recorded_by: str
    data: dict[str, Any]
    prev_hash: str
    hash: str
    retracted: bool


class TimelinePublic(_Reference):
    partner_id: str
    events: list[TimelineItem]
    next_cursor: str | None


class ComponentPublic(BaseModel):
    name: Literal["cadence", "our_reliability", "reciprocity", "acknowledgment", "trust"]
    counts: bool = Field(description="Whether it has something to measure at as_of (SPEC §3).")
    score: float | None = Field(description="0-100 when it counts; null when it does not.")
    weight: int
    explanation: str


class HealthPublic(_Reference):
    partner_id: str
    name: str
    score: int
    band: Literal["thriving", "steady", "at_risk", "critical"]
    components: list[ComponentPublic]


class HealthPoint(BaseModel):
    as_of: str
    score: int
    band: str


class HealthHistoryPublic(_Reference):
    partner_id: str
    interval: Literal["month", "week"]
    time_zone: str = Field(description="The IANA zone the month or week ends are days of.")
    points: list[HealthPoint]


class FiguresPublic(BaseModel):
    made: int
    open: int
    overdue: int
    fulfilled_on_time: int
    fulfilled_late: int
    cancelled: int
    renegotiated_after_due: int
    fulfilled: int
    fulfilment_rate: float | None
    on_time_rate: float | None


class CommitmentPublic(_Open):
    commitment_id: str
    owed_by: Literal["us", "partner"]
    description: str
    status: Literal["open", "overdue", "fulfilled_on_time", "fulfilled_late", "cancelled"]
    due_on: str
    fulfilled_on: str | None
    days_late: int | None
    renegotiated_after_due: bool


class CommitmentsPublic(_Reference):
    partner_id: str
    figures: dict[str, FiguresPublic]
    commitments: list[CommitmentPublic]


class SharedCommitmentPublic(_Open):
    commitment_id: str
    owed_by: Literal["us", "partner"]
    description: str
    resource: str | None
    amount: str | None
    currency: str | None
    made_on: str
    due_on: str
    original_due_on: str | None
    status: Literal["open", "overdue", "fulfilled_on_time", "fulfilled_late", "cancelled"]
    fulfilled_on: str | None
    days_late: int | None


class SharedPaymentPublic(_Open):
    paid_on: str
    amount: str
    currency: str
    purpose: str
    commitment_id: str | None


class SharedThanksPublic(_Open):
    on: str
    form: str


class SharedOutcomePublic(_Open):
    on: str
    summary: str


class SharedWithPartnerPublic(_Reference):
    """What is shared with a partner (SPEC §4, the partner role): never internal notes or health."""

    partner_id: str
    name: str
    language: str | None
    cadence_days: int | None
    commitments: list[SharedCommitmentPublic]
    payments: list[SharedPaymentPublic]
    thanks: list[SharedThanksPublic]
    outcomes: list[SharedOutcomePublic]


class AgendaCommitment(BaseModel):
    partner_id: str
    name: str
    commitment_id: str
    owed_by: Literal["us", "partner"]
    description: str
    due_on: str
    overdue_days: int


class AgendaCheckin(BaseModel):
    partner_id: str
    name: str
    due_on: str
    overdue_days: int


class AccountabilityPublic(_Reference):
    coalition_id: str | None
    owed_by: str | None
    us: FiguresPublic | None = None
    partner: FiguresPublic | None = None
    overdue: list[AgendaCommitment]


class CoalitionMember(BaseModel):
    partner_id: str
    name: str
    joined_at: str


class CoalitionPublic(_Reference):
    id: str
    name: str
    shared_vision: str
    agreed_measures: list[str]
    formed_at: str
    version: int
    members: list[CoalitionMember]


class CoalitionsPublic(_Reference):
    coalitions: list[CoalitionPublic]


class ReportMember(BaseModel):
    partner_id: str
    name: str
    health: HealthBrief
    us: FiguresPublic
    partner: FiguresPublic
    payments: dict[str, str]
    thanks: int
    breaches: dict[str, int]


class ReportTotals(BaseModel):
    us: FiguresPublic
    partner: FiguresPublic
    payments: dict[str, str]
    thanks: int
    breaches: dict[str, int]


class ReportPublic(_Reference):
    coalition: dict[str, str]
    period: dict[str, str | None]
    time_zone: str = Field(description="The IANA zone its calendar days are counted in.")
    digest: str
    generated_by: str
    members: list[ReportMember]
    totals: ReportTotals


class AgendaPublic(_Reference):
    time_zone: str = Field(description="The IANA zone its days are counted in.")
    within_days: int
    checkins: list[AgendaCheckin]
    commitments: list[AgendaCommitment]


class ReviewPublic(_Reference):
    partners: int
    by_community: dict[str, int]
    by_role: dict[str, int]
    by_region: dict[str, int]
    by_stage: dict[str, int]
    over_engaged: list[dict[str, Any]]
    neglected: list[dict[str, Any]]


class LogEvent(BaseModel):
    position: int
    stream_id: str
    stream_type: Literal["partner", "coalition"]
    version: int
    type: str
    occurred_at: str
    recorded_at: str
    recorded_by: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


class EventsPublic(BaseModel):
    events: list[LogEvent]
    next_after: int | None


class VerificationRunning(BaseModel):
    """A verification under way (in any server process of the ledger)."""

    started_at: str
    events_checked: int = Field(description="How many events it has read so far.")
    events: int = Field(description="The log's events when it started.")
    run_by: str


class VerifyPublic(BaseModel):
    """The latest completed verification of the whole log (api.verifying)."""

    ok: bool
    events_checked: int
    position: int
    digest: str
    problems: list[dict[str, Any]]
    # Format 1 events an erasure overwrote: their content can no longer be checked (issue 16)
    unchecked: list[dict[str, Any]] = []
    started_at: str = Field(description="When the run started (RFC 3339, UTC).")
    verified_at: str = Field(description="When it finished (RFC 3339, UTC).")
    duration_ms: int = Field(description="How long it took, in milliseconds.")
    run_by: str = Field(description="The process that ran it (a server, or pledger verify).")
    log_position: int = Field(description="The log's last position now.")
    current: bool = Field(description="Whether the run read up to the log's position now.")
    running: VerificationRunning | None = Field(
        default=None, description="A run under way now, if any."
    )


class VerifyRunningPublic(ProblemPublic):
    """202: a verification is under way and no (fresh enough) result exists yet."""

    asked_at: str | None = Field(default=None, description="When the fresh run was asked for.")
    running: VerificationRunning | None = None
    latest: VerifyPublic | None = Field(
        default=None, description="The latest completed run, if any (older than asked)."
    )


class KeyPublic(BaseModel):
    algorithm: str
    public_key: str


class CheckpointPublic(BaseModel):
    position: int
    tree_size: int
    digest: str
    tree_head: str
    time: str
    signature: str
    public_key: str


class CheckpointsPublic(BaseModel):
    checkpoints: list[CheckpointPublic]


class InclusionProofPublic(BaseModel):
    position: int
    leaf_index: int
    tree_size: int
    leaf_hash: str
    tree_head: str
    path: list[str]


class ConsistencyProofPublic(BaseModel):
    first: int
    second: int
    first_head: str
    second_head: str
    path: list[str]
