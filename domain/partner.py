"""The partner aggregate: one relationship, every interaction an immutable event.

Command methods (verbs) check the rules of SPEC §2 and then record an event; each event's
``evolve`` only changes state. A retraction re-folds the partner from its events, leaving the
retracted one out, so the state always equals the fold of the entries that still count.

The rules read only a compact state: the fold itself, plus a small index of what the rules
need from entries that no longer count (the ids ever used, which versions are retractions).
A partner built event by event keeps its entries too (``entries``), for the refold. A partner
loaded from the log is compact (``keeps_history`` False, no entries: issue 17 item 6, its memory
no longer grows with its history, and it can be stored as a :class:`Partner.Snapshot`); a retraction
on it raises :class:`HistoryNeeded` before anything changes, and the caller gives it its
recorded entries (:meth:`Partner.take_history`) and runs the command again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, cast
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as LibrarySnapshot
from pydantic import AfterValidator
from typing_extensions import TypedDict  # pydantic reads a TypedDict of typing only on 3.12+

from domain import values
from domain.chained import ChainedAggregate, Stamp
from domain.errors import (
    AlreadyClosed,
    AlreadyRepaired,
    AlreadyRetracted,
    DuplicateId,
    InvalidRetraction,
    Problem,
    StillReferenced,
    UnknownReference,
    ValidationFailed,
)
from domain.money import money_problem, normalize_amount
from domain.personal import ERASED_PERSON, erased_name, name_key, people_keys
from domain.values import (
    AgreementSigned,
    CheckinCadenceAgreed,
    CommitmentCancelled,
    CommitmentFulfilled,
    CommitmentMade,
    CommitmentRenegotiated,
    ContactMade,
    ContactPerson,
    Contacts,
    EntryRetracted,
    EventData,
    FeedbackReceived,
    MeetingHeld,
    OutcomeShared,
    PartnerKind,
    PartnerRegistered,
    PaymentMade,
    PersonalDataErased,
    Preferences,
    ProfileUpdated,
    Side,
    Stage,
    StageChanged,
    ThanksExpressed,
    TrustBreachRecorded,
    TrustRepaired,
)

__all__ = [
    "DEFAULT_CADENCE_DAYS",
    "FUTURE_TOLERANCE",
    "CommitmentRecord",
    "HistoryNeeded",
    "Partner",
    "PartnerState",
]

DEFAULT_CADENCE_DAYS = 30
FUTURE_TOLERANCE = timedelta(minutes=5)


def check_not_future(stamp: Stamp) -> None:
    if stamp.occurred_at.tzinfo is None:
        raise ValidationFailed([Problem("occurred_at", "give a timezone, such as Z for UTC")])
    try:
        stamp.occurred_at.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 has no UTC moment a datetime can hold
        raise ValidationFailed(
            [Problem("occurred_at", "is out of range once converted to UTC")]
        ) from None
    if stamp.occurred_at > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise ValidationFailed(
            [Problem("occurred_at", "is in the future; record events once they have happened")]
        )


def _money(amount: Any, currency: str | None, *, required: bool) -> Any:
    """Check an amount with its currency and write it with the currency's decimal places."""
    if amount is None and currency is None and not required:
        return None
    if amount is None or currency is None:
        missing = "amount" if amount is None else "currency"
        raise ValidationFailed([Problem(missing, "give both an amount and its currency")])
    problem = money_problem(amount, currency)
    if problem is not None:
        field_name = "currency" if "ISO 4217" in problem else "amount"
        raise ValidationFailed([Problem(field_name, problem)])
    return normalize_amount(amount, currency)


class HistoryNeeded(Exception):
    """A compact partner (loaded from the log, holding no entries) was asked to refold: a
    retraction. Nothing changed; read its recorded events up to version ``upto`` (those after
    are its pending events), give them to :meth:`Partner.take_history` and try again. Not a
    refusal: it never reaches a caller of the application."""

    def __init__(self, upto: int) -> None:
        super().__init__(f"the partner's entries up to version {upto} are needed")
        self.upto = upto


# An instant of the state as it was folded: aware, in UTC (as the events' times are), also when
# read back from a snapshot (pydantic would give its own UTC tzinfo).
Instant = Annotated[datetime, AfterValidator(lambda moment: moment.astimezone(UTC))]


@dataclass
class CommitmentRecord:
    commitment_id: str
    owed_by: Side
    made_version: int
    made_at: Instant
    due_on: date
    closed: Literal["fulfilled", "cancelled"] | None = None
    dependents: list[int] = field(default_factory=list)


@dataclass
class BreachRecord:
    breach_id: str
    recorded_version: int
    occurred_at: Instant
    repaired: bool = False
    dependents: list[int] = field(default_factory=list)


class Partner(ChainedAggregate):
    STREAM_TYPE = "partner"

    class Event(ChainedAggregate.Event):
        def apply(self, aggregate: Any) -> None:
            partner: Partner = aggregate
            partner.note(self)
            super().apply(aggregate)

        def index(self, partner: Partner) -> None:
            """Note what the rules need of this entry even once it no longer counts."""

    class Registered(Aggregate.Created, Event):
        data: PartnerRegistered

        def evolve(self, aggregate: Any) -> None:
            partner: Partner = aggregate
            d = self.data
            partner.name, partner.kind, partner.region = d.name, d.kind, d.region
            partner.roles, partner.communities = d.roles, d.communities
            partner.referred_by, partner.preferences = d.referred_by, d.preferences
            partner.contacts = d.contacts or Contacts()
            partner.registered_at = self.occurred_at
            partner.keep_person_keys(self)

    class ProfileUpdated(Event):
        data: ProfileUpdated

        def evolve(self, aggregate: Any) -> None:
            partner: Partner = aggregate
            for name in self.data.model_fields_set:
                value = getattr(self.data, name)
                if value is not None:
                    setattr(partner, name, value)
            if self.data.contacts is not None:
                partner.keep_person_keys(self)

    class ContactMade(Event):
        data: ContactMade

    class MeetingHeld(Event):
        data: MeetingHeld

    class CheckinCadenceAgreed(Event):
        data: CheckinCadenceAgreed

        def evolve(self, aggregate: Any) -> None:
            aggregate.cadence_days = self.data.every_days

    class CommitmentMade(Event):
        data: CommitmentMade

        def index(self, partner: Partner) -> None:
            assert self.data.commitment_id is not None
            partner.ids_at[self.originator_version] = ("commitment", self.data.commitment_id)

        def evolve(self, aggregate: Any) -> None:
            d = self.data
            assert d.commitment_id is not None
            aggregate.commitments[d.commitment_id] = CommitmentRecord(
                d.commitment_id, d.owed_by, self.originator_version, self.occurred_at, d.due_on
            )

    class CommitmentFulfilled(Event):
        data: CommitmentFulfilled

        def evolve(self, aggregate: Any) -> None:
            aggregate.close_commitment(self.data.commitment_id, "fulfilled", self)

    class CommitmentRenegotiated(Event):
        data: CommitmentRenegotiated

        def evolve(self, aggregate: Any) -> None:
            record = aggregate.depend_on_commitment(self.data.commitment_id, self)
            if record is not None:
                record.due_on = self.data.due_on

    class CommitmentCancelled(Event):
        data: CommitmentCancelled

        def evolve(self, aggregate: Any) -> None:
            aggregate.close_commitment(self.data.commitment_id, "cancelled", self)

    class PaymentMade(Event):
        data: PaymentMade

        def evolve(self, aggregate: Any) -> None:
            aggregate.depend_on_commitment(self.data.commitment_id, self)

    class ThanksExpressed(Event):
        data: ThanksExpressed

        def evolve(self, aggregate: Any) -> None:
            aggregate.depend_on_commitment(self.data.for_commitment_id, self)

    class FeedbackReceived(Event):
        data: FeedbackReceived

        def index(self, partner: Partner) -> None:
            assert self.data.feedback_id is not None
            partner.ids_at[self.originator_version] = ("feedback", self.data.feedback_id)

        def evolve(self, aggregate: Any) -> None:
            assert self.data.feedback_id is not None
            aggregate.feedback[self.data.feedback_id] = [self.originator_version]

    class OutcomeShared(Event):
        data: OutcomeShared

        def evolve(self, aggregate: Any) -> None:
            if self.data.feedback_id in aggregate.feedback:
                aggregate.feedback[self.data.feedback_id].append(self.originator_version)

    class TrustBreachRecorded(Event):
        data: TrustBreachRecorded

        def index(self, partner: Partner) -> None:
            assert self.data.breach_id is not None
            partner.ids_at[self.originator_version] = ("breach", self.data.breach_id)

        def evolve(self, aggregate: Any) -> None:
            assert self.data.breach_id is not None
            aggregate.breaches[self.data.breach_id] = BreachRecord(
                self.data.breach_id, self.originator_version, self.occurred_at
            )

    class TrustRepaired(Event):
        data: TrustRepaired

        def evolve(self, aggregate: Any) -> None:
            breach = aggregate.breaches.get(self.data.breach_id)
            if breach is not None:
                breach.repaired = True
                breach.dependents.append(self.originator_version)

    class StageChanged(Event):
        data: StageChanged

        def evolve(self, aggregate: Any) -> None:
            aggregate.stage = self.data.stage

    class AgreementSigned(Event):
        data: AgreementSigned

    class PersonalDataErased(Event):
        data: PersonalDataErased

        def evolve(self, aggregate: Any) -> None:
            partner: Partner = aggregate
            if self.data.contact is not None:
                partner.forget_person(self.data.contact)
                return
            partner.name = erased_name(str(partner.id))
            partner.communities, partner.preferences = (), Preferences()
            partner.contacts, partner.person_keys = Contacts(), ()
            partner.erased = True

    class EntryRetracted(Event):
        data: EntryRetracted

        def index(self, partner: Partner) -> None:
            partner.retractions.add(self.originator_version)

        def evolve(self, aggregate: Any) -> None:
            aggregate.retracted.add(self.data.version)
            aggregate.refold()

    class Snapshot(LibrarySnapshot):
        """The library's snapshot of a partner (its compact state, :class:`PartnerState`): a
        write loads the latest one and the events after it, rather than the whole stream."""

        @classmethod
        def take(cls, aggregate: Any) -> Partner.Snapshot:
            snapshot: Partner.Snapshot = super().take(aggregate)
            # The entries stay in the log; the version it was loaded from is the snapshot's own.
            for name in ("entries", "keeps_history", "snapshot_version"):
                snapshot.state.pop(name, None)
            return snapshot

        def mutate(self, _: None) -> Partner:
            partner = super().mutate(None)
            assert isinstance(partner, Partner)
            partner.entries, partner.keeps_history = {}, False
            partner.snapshot_version = self.originator_version
            return partner

    def __init__(self) -> None:
        super().__init__()
        # Every entry, so that a retraction can re-fold the ones that still count; none once
        # the partner is compact (forget_history).
        self.entries: dict[int, Partner.Event] = {}
        self.keeps_history = True
        self.retracted: set[int] = set()
        # Kept across refolds, for the rules: the version of each entry that used an id (an id
        # is never used twice within a partner), and the versions of the retractions.
        self.ids_at: dict[int, tuple[str, str]] = {}
        self.retractions: set[int] = set()
        # The version of the snapshot this partner was loaded from (0: none), for the
        # application's snapshot policy.
        self.snapshot_version = 0
        self._reset()

    def _reset(self) -> None:
        self.name = ""
        self.kind = PartnerKind.ORGANIZATION
        self.roles: tuple[str, ...] = ()
        self.communities: tuple[str, ...] = ()
        self.region: str | None = None
        self.referred_by: UUID | None = None
        self.preferences = Preferences()
        self.contacts = Contacts()
        # The person key of each of contacts.people, in order (domain.personal; empty for
        # contacts recorded before people had keys, or format 1).
        self.person_keys: tuple[str, ...] = ()
        self.registered_at: datetime | None = None
        self.stage = Stage.PROSPECT
        self.cadence_days = DEFAULT_CADENCE_DAYS
        self.commitments: dict[str, CommitmentRecord] = {}
        self.breaches: dict[str, BreachRecord] = {}
        self.feedback: dict[str, list[int]] = {}
        self.erased = False

    # ---- contact people (issue 16) ------------------------------------------------------

    def keep_person_keys(self, event: ChainedAggregate.Event) -> None:
        """Take the person keys of the contacts ``event`` recorded."""
        keys = people_keys(event.seal.disclosed) if event.seal is not None else ()
        self.person_keys = keys if len(keys) == len(self.contacts.people) else ()

    def known_people(self) -> dict[str, str]:
        if len(self.person_keys) != len(self.contacts.people):
            return {}  # contacts recorded before people had keys
        return {
            name_key(person.name): key
            for person, key in zip(self.contacts.people, self.person_keys, strict=True)
            if person.name != ERASED_PERSON
        }

    def person_key_of(self, contact: str) -> str | None:
        """The person key of the contact person ``contact`` names (their name, spaces and
        case aside, or their person key), or None when no such person is on record (or
        they were erased)."""
        known = self.known_people()
        if contact in known.values():
            return contact
        return known.get(name_key(contact))

    def forget_person(self, key: str) -> None:
        """Show the contact person with person key ``key`` as erased."""
        if key not in self.person_keys:
            return
        self.contacts = self.contacts.model_copy(
            update={
                "people": tuple(
                    ContactPerson(name=ERASED_PERSON) if k == key else person
                    for person, k in zip(self.contacts.people, self.person_keys, strict=True)
                )
            }
        )

    # ---- folding ------------------------------------------------------------------------

    def note(self, entry: Partner.Event) -> None:
        """Keep ``entry`` (when entries are kept) and index it, before it changes the state.
        Raises HistoryNeeded, changing nothing, for a retraction on a compact partner."""
        if self.keeps_history:
            self.entries[entry.originator_version] = entry
        elif isinstance(entry, Partner.EntryRetracted):
            raise HistoryNeeded(self.version - len(self.pending_events))
        entry.index(self)

    def forget_history(self) -> None:
        """Keep only the compact state: the entries stay in the log (see the module's notes)."""
        self.entries, self.keeps_history = {}, False

    def held(self) -> int:
        """Kept entries, and the records, references and ids of the compact state."""
        return (
            1
            + len(self.entries)
            + sum(1 + len(c.dependents) for c in self.commitments.values())
            + sum(1 + len(b.dependents) for b in self.breaches.values())
            + sum(len(refs) for refs in self.feedback.values())
            + len(self.ids_at)
            + len(self.retracted)
            + len(self.retractions)
            + len(self.contacts.people)
        )

    def take_history(self, recorded: Iterable[Partner.Event]) -> None:
        """Keep the entries again: ``recorded`` are the events read from the log up to the
        version :class:`HistoryNeeded` named; the pending events are the rest. Raises
        ValueError when they are not every version from 1 to the partner's."""
        entries = {event.originator_version: event for event in recorded}
        entries.update({e.originator_version: cast(Partner.Event, e) for e in self.pending_events})
        if sorted(entries) != list(range(1, self.version + 1)):
            msg = f"the history given is not versions 1 to {self.version} of partner {self.id}"
            raise ValueError(msg)
        self.entries, self.keeps_history = entries, True

    def refold(self) -> None:
        """Recompute the state from every entry that still counts."""
        assert self.keeps_history, "note() asks for the history first"
        self._reset()
        for version in sorted(self.entries):
            entry = self.entries[version]
            if version not in self.retracted and not isinstance(entry, Partner.EntryRetracted):
                entry.evolve(self)

    def close_commitment(
        self, commitment_id: str, how: Literal["fulfilled", "cancelled"], event: Partner.Event
    ) -> None:
        record = self.depend_on_commitment(commitment_id, event)
        if record is not None:
            record.closed = how

    def depend_on_commitment(
        self, commitment_id: str | None, event: Partner.Event
    ) -> CommitmentRecord | None:
        record = self.commitments.get(commitment_id) if commitment_id else None
        if record is not None:
            record.dependents.append(event.originator_version)
        return record

    # ---- commands -----------------------------------------------------------------------

    @classmethod
    def register(
        cls, data: PartnerRegistered, stamp: Stamp, stream_id: UUID | None = None
    ) -> Partner:
        check_not_future(stamp)
        return cls._start(cls.Registered, stream_id or uuid4(), data, stamp)

    # Commands name payloads through ``values.``: inside this class body the bare names would
    # mean the nested event classes of the same name.
    def execute(self, data: EventData, stamp: Stamp) -> None:
        """Check the rules for one command and record its event."""
        check_not_future(stamp)
        command = _COMMANDS.get(type(data))
        if command is None:
            msg = f"{data.TYPE} is not an event a partner records"
            raise ValidationFailed([Problem("type", msg)])
        command(self, data, stamp)

    def update_profile(self, data: values.ProfileUpdated, stamp: Stamp) -> None:
        if not data.model_fields_set or all(
            getattr(data, name) is None for name in data.model_fields_set
        ):
            raise ValidationFailed(
                [Problem("profile_updated", "name at least one field to update")]
            )
        if data.referred_by == self.id:
            raise ValidationFailed([Problem("referred_by", "a partner cannot refer itself")])
        self._record(Partner.ProfileUpdated, data, stamp)

    def record_contact(self, data: values.ContactMade, stamp: Stamp) -> None:
        self._record(Partner.ContactMade, data, stamp)

    def hold_meeting(self, data: values.MeetingHeld, stamp: Stamp) -> None:
        self._record(Partner.MeetingHeld, data, stamp)

    def agree_cadence(self, data: values.CheckinCadenceAgreed, stamp: Stamp) -> None:
        self._record(Partner.CheckinCadenceAgreed, data, stamp)

    def make_commitment(self, data: values.CommitmentMade, stamp: Stamp) -> None:
        commitment_id = data.commitment_id or str(uuid4())
        if commitment_id in self._all_commitment_ids():
            raise DuplicateId(f"commitment_id {commitment_id} is already used for this partner.")
        made_on = stamp.occurred_at.astimezone(UTC).date()
        if data.due_on < made_on:
            raise ValidationFailed(
                [
                    Problem(
                        "due_on",
                        f"{data.due_on} is before the day the commitment was made ({made_on})",
                    )
                ]
            )
        amount = _money(data.amount, data.currency, required=False)
        data = data.model_copy(update={"commitment_id": commitment_id, "amount": amount})
        self._record(Partner.CommitmentMade, data, stamp)

    def fulfil_commitment(self, data: values.CommitmentFulfilled, stamp: Stamp) -> None:
        self._open_commitment(data.commitment_id, stamp, "fulfilled")
        self._record(Partner.CommitmentFulfilled, data, stamp)

    def renegotiate_commitment(self, data: values.CommitmentRenegotiated, stamp: Stamp) -> None:
        record = self._open_commitment(data.commitment_id, stamp, "renegotiated")
        if data.due_on < record.made_at.date():
            raise ValidationFailed(
                [Problem("due_on", f"{data.due_on} is before the day the commitment was made")]
            )
        self._record(Partner.CommitmentRenegotiated, data, stamp)

    def cancel_commitment(self, data: values.CommitmentCancelled, stamp: Stamp) -> None:
        self._open_commitment(data.commitment_id, stamp, "cancelled")
        self._record(Partner.CommitmentCancelled, data, stamp)

    def make_payment(self, data: values.PaymentMade, stamp: Stamp) -> None:
        self._known_commitment(data.commitment_id, "commitment_id")
        amount = _money(data.amount, data.currency, required=True)
        self._record(Partner.PaymentMade, data.model_copy(update={"amount": amount}), stamp)

    def express_thanks(self, data: values.ThanksExpressed, stamp: Stamp) -> None:
        self._known_commitment(data.for_commitment_id, "for_commitment_id")
        self._record(Partner.ThanksExpressed, data, stamp)

    def receive_feedback(self, data: values.FeedbackReceived, stamp: Stamp) -> None:
        feedback_id = data.feedback_id or str(uuid4())
        if feedback_id in self._all_ids("feedback"):
            raise DuplicateId(f"feedback_id {feedback_id} is already used for this partner.")
        data = data.model_copy(update={"feedback_id": feedback_id})
        self._record(Partner.FeedbackReceived, data, stamp)

    def share_outcome(self, data: values.OutcomeShared, stamp: Stamp) -> None:
        if data.feedback_id is not None and data.feedback_id not in self.feedback:
            raise UnknownReference(f"No feedback with feedback_id {data.feedback_id} is on record.")
        self._record(Partner.OutcomeShared, data, stamp)

    def record_breach(self, data: values.TrustBreachRecorded, stamp: Stamp) -> None:
        breach_id = data.breach_id or str(uuid4())
        if breach_id in self._all_ids("breach"):
            raise DuplicateId(f"breach_id {breach_id} is already used for this partner.")
        self._record(
            Partner.TrustBreachRecorded, data.model_copy(update={"breach_id": breach_id}), stamp
        )

    def repair_trust(self, data: values.TrustRepaired, stamp: Stamp) -> None:
        breach = self.breaches.get(data.breach_id)
        if breach is None:
            raise UnknownReference(f"No breach with breach_id {data.breach_id} is on record.")
        if breach.repaired:
            raise AlreadyRepaired(f"Breach {data.breach_id} has already been repaired.")
        if stamp.occurred_at < breach.occurred_at:
            raise ValidationFailed(
                [Problem("occurred_at", "is before the breach was recorded as happening")]
            )
        self._record(Partner.TrustRepaired, data, stamp)

    def change_stage(self, data: values.StageChanged, stamp: Stamp) -> None:
        self._record(Partner.StageChanged, data, stamp)

    def sign_agreement(self, data: values.AgreementSigned, stamp: Stamp) -> None:
        if data.ends_on is not None and data.ends_on < data.effective_on:
            raise ValidationFailed([Problem("ends_on", "is before effective_on")])
        self._record(Partner.AgreementSigned, data, stamp)

    def retract_entry(self, data: values.EntryRetracted, stamp: Stamp) -> None:
        version = data.version
        if not 1 <= version <= self.version:
            raise InvalidRetraction(f"This partner has no event with version {version}.")
        if version in self.retractions:
            raise InvalidRetraction(
                "A retraction cannot be retracted; record the entry again instead."
            )
        if version == 1:  # a partner's first event is its registration
            raise InvalidRetraction(
                "A registration cannot be retracted; correct it with profile_updated instead."
            )
        if version in self.retracted:
            raise AlreadyRetracted(f"Version {version} has already been retracted.")
        dependents = self._dependents_of(version)
        if dependents:
            later = ", ".join(str(v) for v in dependents)
            raise StillReferenced(
                f"Version {version} is referred to by later entries (versions {later}); "
                "retract those first."
            )
        if not self.keeps_history:
            raise HistoryNeeded(self.version - len(self.pending_events))
        self._record(Partner.EntryRetracted, data, stamp)

    def erase_personal_data(self, data: values.PersonalDataErased, stamp: Stamp) -> None:
        """Record that this partner's personal data was shredded (the application shreds it
        in the same transaction; issue 16). Never an ordinary event: not in ``execute``."""
        check_not_future(stamp)
        self._record(Partner.PersonalDataErased, data, stamp)

    # ---- helpers ------------------------------------------------------------------------

    def _all_ids(self, kind: str) -> set[str]:
        """Ids used by any entry, retracted or not: an id is never reused within a partner."""
        return {key for used, key in self.ids_at.values() if used == kind}

    def _all_commitment_ids(self) -> set[str]:
        return self._all_ids("commitment")

    def _known_commitment(self, commitment_id: str | None, field_name: str) -> None:
        if commitment_id is not None and commitment_id not in self.commitments:
            raise UnknownReference(f"{field_name} {commitment_id} is not a commitment on record.")

    def _open_commitment(self, commitment_id: str, stamp: Stamp, verb: str) -> CommitmentRecord:
        record = self.commitments.get(commitment_id)
        if record is None:
            raise UnknownReference(
                f"No commitment with commitment_id {commitment_id} is on record."
            )
        if record.closed is not None:
            raise AlreadyClosed(
                f"Commitment {commitment_id} is already {record.closed}, so it cannot be {verb}."
            )
        if stamp.occurred_at < record.made_at:
            raise ValidationFailed([Problem("occurred_at", "is before the commitment was made")])
        return record

    def _dependents_of(self, version: int) -> list[int]:
        """The versions of the entries that still count and refer to the entry ``version``."""
        kind, key = self.ids_at.get(version, ("", ""))
        if kind == "commitment":
            record = self.commitments.get(key)
            return record.dependents if record else []
        if kind == "breach":
            breach = self.breaches.get(key)
            return breach.dependents if breach else []
        if kind == "feedback":
            return self.feedback.get(key, [])[1:]
        return []


_COMMANDS: dict[type[EventData], Any] = {
    ProfileUpdated: Partner.update_profile,
    ContactMade: Partner.record_contact,
    MeetingHeld: Partner.hold_meeting,
    CheckinCadenceAgreed: Partner.agree_cadence,
    CommitmentMade: Partner.make_commitment,
    CommitmentFulfilled: Partner.fulfil_commitment,
    CommitmentRenegotiated: Partner.renegotiate_commitment,
    CommitmentCancelled: Partner.cancel_commitment,
    PaymentMade: Partner.make_payment,
    ThanksExpressed: Partner.express_thanks,
    FeedbackReceived: Partner.receive_feedback,
    OutcomeShared: Partner.share_outcome,
    TrustBreachRecorded: Partner.record_breach,
    TrustRepaired: Partner.repair_trust,
    StageChanged: Partner.change_stage,
    AgreementSigned: Partner.sign_agreement,
    EntryRetracted: Partner.retract_entry,
}


class PartnerState(TypedDict):
    """A partner's compact state, as its snapshot holds it (every attribute but the library's
    id, version and pending events, ``entries`` and ``snapshot_version``). A new attribute of
    :class:`Partner` goes here too: the snapshot mapper refuses a state with other keys. A
    change to one that snapshots already hold needs ``Partner.class_version`` and an upcast,
    or the snapshots deleted (they are retaken)."""

    _created_on: Instant
    _modified_on: Instant
    last_hash: str
    retracted: set[int]
    ids_at: dict[int, tuple[str, str]]
    retractions: set[int]
    name: str
    kind: PartnerKind
    roles: tuple[str, ...]
    communities: tuple[str, ...]
    region: str | None
    referred_by: UUID | None
    preferences: Preferences
    contacts: Contacts
    person_keys: tuple[str, ...]
    registered_at: Instant | None
    stage: Stage
    cadence_days: int
    commitments: dict[str, CommitmentRecord]
    breaches: dict[str, BreachRecord]
    feedback: dict[str, list[int]]
    erased: bool
