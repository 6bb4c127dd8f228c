"""The coalition aggregate: a shared vision, agreed measures, and who belongs to it."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.chained import ChainedAggregate, Stamp
from domain.errors import MembershipConflict
from domain.partner import check_not_future
from domain.values import CoalitionFormed, MemberJoined, MemberLeft

__all__ = ["Coalition"]


class Coalition(ChainedAggregate):
    STREAM_TYPE = "coalition"

    class Event(ChainedAggregate.Event):
        pass

    class Formed(Aggregate.Created, Event):
        data: CoalitionFormed

        def evolve(self, aggregate: Any) -> None:
            coalition: Coalition = aggregate
            coalition.name = self.data.name
            coalition.shared_vision = self.data.shared_vision
            coalition.agreed_measures = self.data.agreed_measures

    class MemberJoined(Event):
        data: MemberJoined

        def evolve(self, aggregate: Any) -> None:
            aggregate.members.add(self.data.partner_id)

    class MemberLeft(Event):
        data: MemberLeft

        def evolve(self, aggregate: Any) -> None:
            aggregate.members.discard(self.data.partner_id)

    def __init__(self) -> None:
        super().__init__()
        self.name = ""
        self.shared_vision = ""
        self.agreed_measures: tuple[str, ...] = ()
        self.members: set[UUID] = set()

    @classmethod
    def form(cls, data: CoalitionFormed, stamp: Stamp) -> Coalition:
        check_not_future(stamp)
        return cls._start(cls.Formed, uuid4(), data, stamp)

    def admit(self, data: MemberJoined, stamp: Stamp) -> None:
        """Record a partner joining; the application has checked that the partner exists."""
        check_not_future(stamp)
        if data.partner_id in self.members:
            raise MembershipConflict(f"Partner {data.partner_id} is already a member of {self.name}.")
        self._record(Coalition.MemberJoined, data, stamp)

    def release(self, data: MemberLeft, stamp: Stamp) -> None:
        check_not_future(stamp)
        if data.partner_id not in self.members:
            raise MembershipConflict(f"Partner {data.partner_id} is not a member of {self.name}.")
        self._record(Coalition.MemberLeft, data, stamp)
