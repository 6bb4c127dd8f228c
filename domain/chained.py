"""What partner and coalition aggregates share: common event fields and the hash chain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.hashing import GENESIS, event_hash
from domain.personal import Seal, disclose, seal
from domain.values import EventData

__all__ = ["ChainedAggregate", "Stamp"]

TData = TypeVar("TData", bound=EventData)
_HASHED = "_hashed"  # beside the event's fields in ``_sealed``: the data as hashed


@dataclass(frozen=True)
class Stamp:
    """Who records an event, and when it happened in the world."""

    occurred_at: datetime
    recorded_by: str

    @classmethod
    def now(cls, recorded_by: str) -> Self:
        return cls(occurred_at=datetime.now(UTC), recorded_by=recorded_by)


class ChainedAggregate(Aggregate):
    """An aggregate whose events each carry the hash of the one before (SPEC §5)."""

    STREAM_TYPE: ClassVar[str]
    # New events commit their personal fields (format 2); False writes format 1, as events
    # recorded before issue 16 were (tests of older ledgers use it).
    SEAL_PERSONAL_DATA: ClassVar[bool] = True

    class Event(Aggregate.Event):
        occurred_at: datetime
        recorded_by: str
        prev_hash: str
        hash: str
        data: EventData
        # Format 2 (domain.personal): the personal fields' commitments, and their values and
        # salts while disclosed; None for an event whose data is hashed as it is (format 1).
        seal: Seal | None

        @property
        def type(self) -> str:
            return self.data.TYPE

        def shown_data(self) -> dict[str, Any]:
            """The data as the API and the views show it: the payload's fields, with personal
            values (or their placeholders) after the others, as read back from the store, so
            that an answer is the same bytes however the event was read."""
            if self.seal is None:
                return self.hashed_data()  # format 1: hashed as shown
            return disclose(self.hashed_data(), self.seal.disclosed, str(self.originator_id))

        def hashed_data(self) -> dict[str, Any]:
            """The data as hashed and stored: as shown, or with the ``personal`` commitments.

            A new event keeps the dict it was hashed over (``_hashed``, see
            ``ChainedAggregate._keep_hashed``) until it is stored (:meth:`stored_data`), so
            that storing it does not dump its payload again; a copy is returned, which the
            caller may change."""
            kept: dict[str, Any] | None = self.__dict__.get(_HASHED)
            return dict(kept) if kept is not None else self._hashed_afresh()

        def stored_data(self) -> dict[str, Any]:
            """The data as hashed, for storing the event: as :meth:`hashed_data`, but the
            event gives up the dict it kept, so that an event held in memory after it was
            stored (an aggregate's entries, a writer's cache) costs no more than before."""
            kept: dict[str, Any] | None = self.__dict__.pop(_HASHED, None)
            return kept if kept is not None else self._hashed_afresh()

        def _hashed_afresh(self) -> dict[str, Any]:
            data = self.data.model_dump(mode="json")
            return data if self.seal is None else self.seal.hashed(data)

        @property
        def subject_id(self) -> str:
            """The data subject whose key encrypts this event's personal values."""
            return self.data.subject_of(self.originator_id)

        @property
        def recorded_at(self) -> datetime:
            return self.timestamp

        def compute_hash(self) -> str:
            """This event's hash recomputed from its content (verification compares it), never
            from the data kept from when it was hashed."""
            return event_hash(
                stream_id=self.originator_id,
                version=self.originator_version,
                type=self.data.TYPE,
                occurred_at=self.occurred_at,
                recorded_at=self.timestamp,
                recorded_by=self.recorded_by,
                data=self._hashed_afresh(),
                prev_hash=self.prev_hash,
            )

        def apply(self, aggregate: Any) -> None:
            assert isinstance(aggregate, ChainedAggregate)
            aggregate.last_hash = self.hash
            self.evolve(aggregate)

        def evolve(self, aggregate: Any) -> None:
            """Change the aggregate's state; never checks a rule (rules live in commands)."""

    def __init__(self) -> None:
        self.last_hash = GENESIS

    @staticmethod
    def _sealed(
        stream_id: UUID,
        version: int,
        data: EventData,
        stamp: Stamp,
        prev_hash: str,
        known: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments of a new event, hash included (``known``: the person keys of
        the contact people on record, domain.personal.seal), and under ``_HASHED`` the data
        as hashed, which is not one of them (see ``_keep_hashed``)."""
        recorded_at = datetime.now(UTC)
        occurred_at = stamp.occurred_at.astimezone(UTC)
        shown = data.model_dump(mode="json")
        sealed = (
            seal(shown, data.PERSONAL_FIELDS, known)
            if ChainedAggregate.SEAL_PERSONAL_DATA
            else None
        )
        hashed = shown if sealed is None else sealed.hashed(shown)
        digest = event_hash(
            stream_id=stream_id,
            version=version,
            type=data.TYPE,
            occurred_at=occurred_at,
            recorded_at=recorded_at,
            recorded_by=stamp.recorded_by,
            data=hashed,
            prev_hash=prev_hash,
        )
        return {
            "timestamp": recorded_at,
            "occurred_at": occurred_at,
            "recorded_by": stamp.recorded_by,
            "prev_hash": prev_hash,
            "hash": digest,
            "data": data,
            "seal": sealed,
            _HASHED: hashed,
        }

    @classmethod
    def _start(cls, event_class: type[Any], stream_id: UUID, data: EventData, stamp: Stamp) -> Self:
        fields = cls._sealed(stream_id, 1, data, stamp, GENESIS)
        hashed = fields.pop(_HASHED)
        aggregate = cls._create(event_class, id=stream_id, **fields)
        aggregate._keep_hashed(hashed)
        return aggregate

    def _record(self, event_class: type[Any], data: EventData, stamp: Stamp) -> None:
        # The people on record matter only to a payload that names contact people (seal keeps
        # their person keys); looking them up for every other event would cost each write.
        known = self.known_people() if "contacts" in data.PERSONAL_FIELDS else None
        fields = self._sealed(self.id, self.version + 1, data, stamp, self.last_hash, known)
        hashed = fields.pop(_HASHED)
        self.trigger_event(event_class, **fields)
        self._keep_hashed(hashed)

    def _keep_hashed(self, hashed: dict[str, Any]) -> None:
        """Keep on the event just recorded the data it was hashed over (not one of its fields:
        it is what ``hashed_data`` would compute again)."""
        self._pending_events[-1].__dict__["_hashed"] = hashed

    def known_people(self) -> dict[str, str]:
        """``{name: person key}`` of the contact people on record (none here)."""
        return {}

    def forget_history(self) -> None:
        """Drop what the state keeps of past events beyond the state itself (a partner's
        entries, domain.partner); nothing here."""

    def held(self) -> int:
        """Roughly how many items (kept events, records, ids) this aggregate holds in memory:
        what a cache of aggregates is bounded by."""
        return 1
