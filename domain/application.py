"""The write side's use cases: load an aggregate, run a command, save, return plain data.

Snapshots (issue 17 item 6). A partner is loaded from its latest snapshot and the events after
it (the library's snapshot store and repository), compact: it keeps its state, not its events
(``domain.partner``). A save stores a partner's snapshot in the same transaction as its events
(the recorder's ``snapshots`` keyword) when ``SNAPSHOT_EVERY`` events or more were recorded
since the snapshot it was loaded from, or when it records a retraction, and the recorder keeps
only the latest snapshot of each stream. Why not the library's ``snapshotting_intervals``: it
snapshots after the save, in a transaction of its own (a second commit, and a window in which
an erasure could commit between the events and a snapshot holding the erased values), and only
at multiples of the interval, so that partners recorded before snapshots existed, or copied,
would wait for their next multiple. Snapshots are not events: no hash, digest, view or export
reads them; erasure deletes the partner's (``api.recorders``).
"""

from __future__ import annotations

import copy
import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from uuid import UUID

import orjson
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import EventStore, IntegrityError, Mapper, Notification
from eventsourcing.utils import resolve_topic

from domain.chained import ChainedAggregate, Stamp
from domain.coalition import Coalition
from domain.errors import (
    Busy,
    CoalitionNotFound,
    LedgerError,
    PartnerNotFound,
    Problem,
    UnknownReference,
    ValidationFailed,
    VersionConflict,
)
from domain.partner import HistoryNeeded, Partner
from domain.personal import (
    CONTENT_ERASED,
    PERSONAL,
    Erasure,
    name_key,
    person_field,
    placeholder,
    subject_of_field,
)
from domain.serialization import TypedMapper, UnreadableSnapshot, data_model_of
from domain.values import (
    CoalitionFormed,
    CommitmentMade,
    ErasedFields,
    ErasureReason,
    EventData,
    MemberJoined,
    MemberLeft,
    PartnerRegistered,
    PersonalDataErased,
    ProfileUpdated,
)

__all__ = [
    "CONTENTION_SECONDS",
    "SNAPSHOT_EVERY",
    "Partnerships",
    "Recorded",
    "SaveOptions",
    "recorded_from",
]

# How long a write without expected_version keeps trying again when other writers win the
# race for its stream, and the most it waits (times the attempt, at random) between tries.
CONTENTION_SECONDS = 10.0
RETRY_JITTER_SECONDS = 0.002
# A partner's snapshot is stored with a save once this many events were recorded since the one
# it was loaded from: a load then reads one snapshot and fewer events than this.
SNAPSHOT_EVERY = 100
TAggregate = TypeVar("TAggregate", bound=ChainedAggregate)


@dataclass(frozen=True)
class SaveOptions:
    """What a caller adds to a save: keyword arguments for the recorder (saved in the same
    transaction as the events), and what to do first when the save conflicts (for instance
    raise because the same request was already recorded, instead of retrying)."""

    recorder_kwargs: dict[str, Any] = field(default_factory=dict)
    on_conflict: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Recorded:
    """What a write recorded: the event's place in its stream and in the global log."""

    stream_id: UUID
    version: int
    position: int
    hash: str
    type: str
    data: dict[str, Any] = field(repr=False)


class Partnerships(Application[UUID]):
    """The ledger's write side: partners and coalitions, each a hash-chained event stream."""

    name = "pledger"
    is_snapshotting_enabled = True

    def construct_mapper(self) -> Mapper[UUID]:
        return TypedMapper()

    def construct_snapshot_store(self) -> EventStore[UUID]:
        """The library's snapshot store, on the recorder's snapshot table when the recorder
        offers one (``api.recorders``: it also writes and deletes snapshots in its own
        transactions), else on the factory's."""
        make = getattr(self.recorder, "snapshot_recorder", None)
        if make is None:
            return super().construct_snapshot_store()
        return EventStore(mapper=self.mapper, recorder=make())

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """The library's save, with the snapshots due (see the module's notes) stored in the
        same transaction as the events. Returns the library's recordings; raises what it
        raises (IntegrityError when a version or a key is already on record)."""
        due = [
            obj
            for obj in objs
            if isinstance(obj, Partner)
            and obj.pending_events
            and (
                obj.version - obj.snapshot_version >= SNAPSHOT_EVERY
                or any(isinstance(e, Partner.EntryRetracted) for e in obj.pending_events)
            )
        ]
        if not due or self.snapshots is None:
            return super().save(*objs, **kwargs)
        snapshots = [Partner.Snapshot.take(partner) for partner in due]
        if hasattr(self.recorder, "snapshot_recorder"):
            kwargs["snapshots"] = [self.mapper.to_stored_event(s) for s in snapshots]
            recordings = super().save(*objs, **kwargs)
        else:  # a recorder of the library's own: the snapshots follow the events
            recordings = super().save(*objs, **kwargs)
            self.snapshots.put(snapshots)
        for partner in due:
            partner.snapshot_version = partner.version
        return recordings

    # ---- partners -----------------------------------------------------------------------

    def register_partner(
        self, data: PartnerRegistered, stamp: Stamp, *, with_save: SaveOptions | None = None
    ) -> Recorded:
        return self._save_one(self.new_partner(data, stamp), with_save)

    def new_partner(self, data: PartnerRegistered, stamp: Stamp) -> Partner:
        """A registered partner, checked but not yet saved (for saving in a batch)."""
        self._check_referrer(data.referred_by)
        return Partner.register(data, stamp)

    def record(
        self,
        partner_id: UUID,
        data: EventData,
        stamp: Stamp,
        *,
        expected_version: int | None = None,
        with_save: SaveOptions | None = None,
    ) -> Recorded:
        """Append one event to a partner's stream, retrying when another writer got there first."""
        self.check_references(partner_id, data)
        return self._change(
            lambda: self.get_partner(partner_id),
            lambda partner: self.execute(partner, data, stamp),
            expected_version,
            with_save,
        )

    def execute(self, partner: Partner, data: EventData, stamp: Stamp) -> None:
        """Run one command on a partner (``Partner.execute``: raises its refusals), first giving
        it its recorded entries when the command needs them (a retraction of a compact
        partner: ``HistoryNeeded``). Every caller that runs commands on a loaded partner goes
        through here."""
        try:
            partner.execute(data, stamp)
        except HistoryNeeded as needed:
            partner.take_history(self._recorded(partner.id, needed.upto))
            partner.execute(data, stamp)

    def get_partner(
        self, partner_id: UUID, version: int | None = None, *, with_history: bool = False
    ) -> Partner:
        """The partner as recorded (at ``version``, or now): compact, loaded from its latest
        snapshot and the events after it; ``with_history`` reads every event and keeps them
        (``Partner.entries``). Raises PartnerNotFound (404)."""
        return self._get(Partner, partner_id, version, PartnerNotFound, with_history=with_history)

    def partner_exists(self, partner_id: UUID) -> bool:
        """Whether a partner (not a coalition, not nothing) is on record under this id."""
        try:
            self.get_partner(partner_id)
        except PartnerNotFound:
            return False
        return True

    # ---- erasure (issue 16) --------------------------------------------------------------

    def erase_personal_data(
        self,
        partner_id: UUID,
        reason: ErasureReason,
        stamp: Stamp,
        *,
        contact: str | None = None,
        with_save: SaveOptions | None = None,
    ) -> Recorded:
        """Record ``personal_data_erased`` on the partner's stream and, in the same
        transaction, shred the partner's personal data (GDPR Art. 17): the keys and personal
        rows of the partner and of their contact people go, and format 1 events (personal
        values inside their hashed content) are overwritten with placeholders, keeping their
        stored hashes.

        With ``contact`` (a contact person's name, spaces and case aside, or their person
        key), only that person's data goes: their key and rows (domain.personal), the event
        naming them by their person key. The organization's other data stays.

        The recorder does the shredding, given an ``erasure`` keyword argument
        (``domain.personal.Erasure``). Raises PartnerNotFound (404); ValidationFailed (422)
        when ``contact`` names no contact person on record, or one also held in events
        recorded before contact people were kept apart (erase the whole partner then).
        """
        partner = self.get_partner(partner_id)  # 404 first
        stored_events = self.recorder.select_events(partner_id)
        if contact is not None:
            key = _person_key(partner, contact, stored_events)
            data = PersonalDataErased(
                reason=reason,
                fields=tuple(
                    ErasedFields(stream_id=partner_id, version=version, fields=(field,))
                    for version, field in _person_fields(stored_events, key)
                ),
                contact=key,
            )
            erasure = Erasure((f"{partner_id}/{key}",))
        else:
            data, erasure = self._whole_erasure(partner_id, reason, stored_events)
        options = with_save or SaveOptions()
        kwargs = {**options.recorder_kwargs, "erasure": erasure}
        return self._change(
            lambda: self.get_partner(partner_id),
            lambda partner: partner.erase_personal_data(data, stamp),
            None,
            SaveOptions(recorder_kwargs=kwargs, on_conflict=options.on_conflict),
        )

    def _whole_erasure(
        self, partner_id: UUID, reason: ErasureReason, stored_events: Sequence[Any]
    ) -> tuple[PersonalDataErased, Erasure]:
        """The event and the shredding that erase all of a partner's personal data."""
        subject = str(partner_id)
        subjects = {subject}
        erased: list[ErasedFields] = []
        rewrites: list[tuple[str, int, bytes]] = []
        for stored in stored_events:
            fields, rewrite = _personal_fields(stored.topic, stored.state, subject)
            if fields:
                erased.append(
                    ErasedFields(
                        stream_id=partner_id, version=stored.originator_version, fields=fields
                    )
                )
                subjects.update(subject_of_field(name, subject) for name in fields)
            if rewrite is not None:
                rewrites.append((subject, stored.originator_version, rewrite))
        elsewhere = getattr(self.recorder, "disclosed_of_subject", None)
        for (stream_id, version), disclosed in (elsewhere(subject) if elsewhere else {}).items():
            if stream_id != subject:
                erased.append(
                    ErasedFields(
                        stream_id=UUID(stream_id), version=version, fields=tuple(sorted(disclosed))
                    )
                )
        data = PersonalDataErased(reason=reason, fields=tuple(erased))
        return data, Erasure(tuple(sorted(subjects)), tuple(rewrites))

    # ---- coalitions ---------------------------------------------------------------------

    def form_coalition(
        self, data: CoalitionFormed, stamp: Stamp, *, with_save: SaveOptions | None = None
    ) -> Recorded:
        return self._save_one(Coalition.form(data, stamp), with_save)

    def join_coalition(
        self,
        coalition_id: UUID,
        data: MemberJoined,
        stamp: Stamp,
        *,
        expected_version: int | None = None,
        with_save: SaveOptions | None = None,
    ) -> Recorded:
        self.check_joining(coalition_id, data)
        return self._change(
            lambda: self.get_coalition(coalition_id),
            lambda coalition: coalition.admit(data, stamp),
            expected_version,
            with_save,
        )

    def check_joining(self, coalition_id: UUID, data: MemberJoined) -> None:
        """Rules of joining that look beyond the coalition's own stream."""
        self.get_coalition(coalition_id)  # 404 before 422
        if not self.partner_exists(data.partner_id):
            raise UnknownReference(f"No partner with id {data.partner_id} is on record.")

    def leave_coalition(
        self,
        coalition_id: UUID,
        data: MemberLeft,
        stamp: Stamp,
        *,
        expected_version: int | None = None,
        with_save: SaveOptions | None = None,
    ) -> Recorded:
        return self._change(
            lambda: self.get_coalition(coalition_id),
            lambda coalition: coalition.release(data, stamp),
            expected_version,
            with_save,
        )

    def get_coalition(self, coalition_id: UUID, version: int | None = None) -> Coalition:
        return self._get(Coalition, coalition_id, version, CoalitionNotFound)

    # ---- batches ------------------------------------------------------------------------

    def save_batch(
        self,
        aggregates: Sequence[ChainedAggregate],
        *,
        with_data: bool = True,
        **recorder_kwargs: Any,
    ) -> list[Recorded]:
        """Save the pending events of many aggregates in one transaction: all or nothing.
        ``with_data=False`` leaves each Recorded's ``data`` empty, for a caller that only
        counts what was recorded (an import of 100,000 rows need not show each payload)."""
        saved = self.save(*aggregates, **recorder_kwargs)
        return [recorded_from(r, with_data=with_data) for r in saved]

    # ---- the global log -----------------------------------------------------------------

    def notifications(
        self, after: int = 0, *, upto: int | None = None, page_size: int = 1000
    ) -> Iterator[Notification]:
        """Stream the stored log in position order, one page in memory at a time."""
        while True:
            page = self.recorder.select_notifications(
                start=after, limit=page_size, stop=upto, inclusive_of_start=False
            )
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].id

    def decode(self, notification: Notification) -> ChainedAggregate.Event:
        event = self.mapper.to_domain_event(notification)
        assert isinstance(event, ChainedAggregate.Event)
        return event

    def last_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    # ---- helpers ------------------------------------------------------------------------

    def _get(
        self,
        kind: type[TAggregate],
        aggregate_id: UUID,
        version: int | None,
        not_found: Callable[[UUID], LedgerError],
        *,
        with_history: bool = False,
    ) -> TAggregate:
        """Load from the latest snapshot (the library's repository) and the events after it;
        from every event when asked ``with_history``, when a retraction follows the snapshot
        (its refold needs the entries) or when the snapshot cannot be read."""
        try:
            if with_history:
                aggregate: object = self._replay(aggregate_id, version)
            else:
                try:
                    aggregate = self.repository.get(
                        aggregate_id, version=version, projector_func=_fold
                    )
                except (HistoryNeeded, UnreadableSnapshot):
                    aggregate = self._replay(aggregate_id, version)
        except AggregateNotFoundError:
            raise not_found(aggregate_id) from None
        if not isinstance(aggregate, kind):
            raise not_found(aggregate_id)
        if not with_history:
            aggregate.forget_history()
        return aggregate

    def _replay(self, aggregate_id: UUID, version: int | None) -> object:
        """The aggregate folded from every one of its events (up to ``version``)."""
        aggregate = _fold(None, self.events.get(aggregate_id, lte=version))
        if aggregate is None:
            raise AggregateNotFoundError(aggregate_id)
        return aggregate

    def _recorded(self, partner_id: UUID, upto: int) -> list[Partner.Event]:
        """A partner's recorded events, versions 1 to ``upto``."""
        return [cast(Partner.Event, e) for e in self.events.get(partner_id, lte=upto)]

    def _check_referrer(self, referred_by: UUID | None) -> None:
        if referred_by is not None and not self.partner_exists(referred_by):
            raise ValidationFailed(
                [Problem("referred_by", f"no partner with id {referred_by} is on record")]
            )

    def check_references(self, partner_id: UUID, data: EventData) -> None:
        """Rules that look beyond the partner's own stream."""
        if isinstance(data, ProfileUpdated) and data.referred_by != partner_id:
            self._check_referrer(data.referred_by)
        if isinstance(data, CommitmentMade) and data.coalition_id is not None:
            try:
                self.get_coalition(data.coalition_id)
            except CoalitionNotFound:
                raise ValidationFailed(
                    [
                        Problem(
                            "coalition_id", f"no coalition with id {data.coalition_id} is on record"
                        )
                    ]
                ) from None

    def _save_one(self, aggregate: ChainedAggregate, with_save: SaveOptions | None) -> Recorded:
        options = with_save or SaveOptions()
        try:
            (recording,) = self.save(aggregate, **options.recorder_kwargs)
        except IntegrityError:
            options.on_conflict()
            raise
        return recorded_from(recording)

    def _change(
        self,
        load: Callable[[], TAggregate],
        command: Callable[[TAggregate], None],
        expected_version: int | None,
        with_save: SaveOptions | None,
    ) -> Recorded:
        """Load, check, record and save; on a lost race, run the command again on the stream
        as it now stands.

        With ``expected_version`` a lost race raises VersionConflict (409): the caller asked
        for that version. Without it the write is tried again, for up to ``CONTENTION_SECONDS``:
        each retry catches up the copy of the aggregate it kept from before the command with
        only the events recorded since (one small read, not a replay of the whole stream), and
        waits a few random milliseconds first so that two processes stop meeting in step.
        Raises Busy (503) when other writers still won every race after that long.
        """
        deadline = time.monotonic() + CONTENTION_SECONDS
        aggregate = load()
        before: TAggregate | None = None  # kept from the second attempt on
        for attempt in itertools.count(1):
            if expected_version is not None and aggregate.version != expected_version:
                raise VersionConflict(expected_version, aggregate.version)
            if attempt > 1:
                before = copy.deepcopy(aggregate)
            command(aggregate)
            try:
                return self._save_one(aggregate, with_save)
            except IntegrityError:
                if expected_version is not None:
                    raise VersionConflict(expected_version, load().version) from None
                if time.monotonic() >= deadline:
                    break
            time.sleep(random.uniform(0, min(attempt, 10) * RETRY_JITTER_SECONDS))  # noqa: S311
            aggregate = load() if before is None else self._caught_up(before)
        msg = (
            "Other writers kept changing this record at the same moment; nothing was recorded. "
            "Please send the same request again."
        )
        raise Busy(msg)

    def _caught_up(self, aggregate: TAggregate) -> TAggregate:
        """``aggregate`` with the events recorded on its stream after its version applied
        (a compact partner given its entries first when one of them is a retraction)."""
        newer = list(self.events.get(aggregate.id, gt=aggregate.version))
        try:
            caught_up: TAggregate = _fold(aggregate, newer)
        except HistoryNeeded as needed:
            assert isinstance(aggregate, Partner)
            aggregate.take_history(self._recorded(aggregate.id, needed.upto))
            caught_up = _fold(aggregate, [e for e in newer if e.originator_version > needed.upto])
        return caught_up


def _personal_fields(
    topic: str, state: bytes, subject: str
) -> tuple[tuple[str, ...], bytes | None]:
    """The personal fields an erasure shreds in one stored event, and for a format 1 event
    holding personal values in its hashed content, its state overwritten with placeholders
    (marked ``content_erased``: its stored hash can no longer be checked)."""
    document = orjson.loads(state)
    data = document["data"]
    personal = data.get(PERSONAL)
    if isinstance(personal, dict):
        return tuple(sorted(personal["commitments"])), None
    model = data_model_of(resolve_topic(topic))
    fields = tuple(
        name
        for name in sorted(model.PERSONAL_FIELDS)
        if data.get(name) not in (None, "", [], {}) and data.get(name) != placeholder(name, subject)
    )
    if not fields:
        return (), None
    for name in fields:
        data[name] = placeholder(name, subject)
    document[CONTENT_ERASED] = True
    return fields, orjson.dumps(document)


def _person_key(partner: Partner, contact: str, stored_events: Sequence[Any]) -> str:
    """The person key of the contact person ``contact`` names; ValidationFailed (422) when
    none is on record, or when an event recorded before contact people were kept apart
    (format 1, or contacts under one commitment) also holds them."""
    key = partner.person_key_of(contact)
    if key is None:
        msg = "no contact person of this partner has that name (or it was erased already)"
        raise ValidationFailed([Problem("contact", msg)])
    names = {
        name_key(p.name)
        for p, k in zip(partner.contacts.people, partner.person_keys, strict=True)
        if k == key
    }
    for stored in stored_events:
        document = orjson.loads(stored.state)["data"]
        personal = document.get(PERSONAL)
        if isinstance(personal, dict):
            disclosed = getattr(stored, "disclosed", None) or {}
            held = disclosed.get("contacts", ("", {}))[1]
        else:
            held = document.get("contacts")
        people = held.get("people") if isinstance(held, dict) else None
        if any(isinstance(p, dict) and name_key(str(p.get("name"))) in names for p in people or ()):
            msg = (
                f"this contact person is also in version {stored.originator_version}, recorded "
                "before contact people were kept apart: only the whole partner's personal "
                "data can be erased"
            )
            raise ValidationFailed([Problem("contact", msg)])
    return key


def _person_fields(stored_events: Sequence[Any], key: str) -> list[tuple[int, str]]:
    """``[(version, field)]``: the events holding the contact person ``key``'s commitment."""
    field = person_field(key)
    found = []
    for stored in stored_events:
        personal = orjson.loads(stored.state)["data"].get(PERSONAL)
        if isinstance(personal, dict) and field in personal["commitments"]:
            found.append((stored.originator_version, field))
    return found


def _fold(aggregate: Any, events: Iterable[Any]) -> Any:
    """Replay events onto an aggregate (the library's projector, minus a per-event runtime
    protocol check that costs more than the replay itself)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def recorded_from(recording: Any, *, with_data: bool = True) -> Recorded:
    """What a write recorded, from the library's recording of the event (``data`` empty
    when not ``with_data``)."""
    event: ChainedAggregate.Event = recording.domain_event
    return Recorded(
        stream_id=event.originator_id,
        version=event.originator_version,
        position=recording.notification.id,
        hash=event.hash,
        type=event.data.TYPE,
        data=event.shown_data() if with_data else {},
    )
