"""The coalition aggregate: a shared vision, agreed measures, and who belongs to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain import values
from domain.chained import ChainedAggregate, Stamp
from domain.errors import MembershipConflict, Problem, ValidationFailed
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
            aggregate.changed_at[self.data.partner_id] = self.occurred_at

    class MemberLeft(Event):
        data: MemberLeft

        def evolve(self, aggregate: Any) -> None:
            aggregate.members.discard(self.data.partner_id)
            aggregate.changed_at[self.data.partner_id] = self.occurred_at

    def __init__(self) -> None:
        super().__init__()
        self.name = ""
        self.shared_vision = ""
        self.agreed_measures: tuple[str, ...] = ()
        self.members: set[UUID] = set()
        self.changed_at: dict[UUID, datetime] = {}  # each member's last join or leave

    def held(self) -> int:
        """Its members and their last changes (a coalition keeps no events)."""
        return 1 + len(self.members) + len(self.changed_at)

    @classmethod
    def form(cls, data: CoalitionFormed, stamp: Stamp, stream_id: UUID | None = None) -> Coalition:
        check_not_future(stamp)
        return cls._start(cls.Formed, stream_id or uuid4(), data, stamp)

    # Commands name payloads through ``values.``: inside this class body the bare names would
    # mean the nested event classes of the same name.
    def admit(self, data: values.MemberJoined, stamp: Stamp) -> None:
        """Record a partner joining; the application has checked that the partner exists."""
        check_not_future(stamp)
        self._check_in_order(data.partner_id, stamp)
        if data.partner_id in self.members:
            raise MembershipConflict(
                f"Partner {data.partner_id} is already a member of {self.name}."
            )
        self._record(Coalition.MemberJoined, data, stamp)

    def release(self, data: values.MemberLeft, stamp: Stamp) -> None:
        check_not_future(stamp)
        self._check_in_order(data.partner_id, stamp)
        if data.partner_id not in self.members:
            raise MembershipConflict(f"Partner {data.partner_id} is not a member of {self.name}.")
        self._record(Coalition.MemberLeft, data, stamp)

    def _check_in_order(self, partner_id: UUID, stamp: Stamp) -> None:
        """A member's joins and leaves are recorded in the order they happened: the views fold
        them by occurred_at, so a leave dated before its join would keep the member listed.
        (Other members' changes, and the formation itself, may be backdated freely.)"""
        last = self.changed_at.get(partner_id)
        if last is not None and stamp.occurred_at < last:
            raise ValidationFailed(
                [
                    Problem(
                        "occurred_at",
                        f"is before this partner's last join or leave "
                        f"({last:%Y-%m-%d %H:%M} UTC); record them in the order they happened",
                    )
                ]
            )
