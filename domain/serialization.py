"""The one serializer for every event: a typed mapper over orjson.

A stored event's state is plain JSON, readable without this code:

    {"occurred_at": "...Z", "recorded_at": "...Z", "recorded_by": "...", "prev_hash": "...",
     "hash": "...", "data": {...the type's own fields exactly as the API shows them...}}

``data`` is the content as hashed: since issue 16 (format 2) each non-empty personal field is
left out of it and committed to in its ``personal`` member (``domain.personal``); the values go
to the recorder beside the event (:class:`PersonalStoredEvent`) and come back from it
(:class:`DisclosedStoredEvent`, :class:`DisclosedNotification`), or read as placeholders once
erased. A format 1 state overwritten by an erasure carries ``"content_erased": true``.

Reading it back, the event class's annotation of ``data`` says which payload model restores
the types (Decimal, date, UUID, enums, tuples); times come back as aware UTC datetimes.
``class_version`` and ``upcast_vN_vN+1`` static methods on an event class upgrade old states.

A partner's snapshot (the library's snapshot store, issue 17 item 6) is stored by the same
mapper as ``{"timestamp": "...Z", "topic": "domain.partner:Partner", "state": {...}}``, its
state written and read by pydantic from :class:`domain.partner.PartnerState`. It is not an
event: it is in no hash, in no digest, and no reader of the log sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, cast, get_type_hints
from uuid import UUID

import orjson
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    Notification,
    StoredEvent,
)
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import TypeAdapter

from domain.chained import ChainedAggregate
from domain.coalition import Coalition
from domain.errors import DamagedEvent
from domain.hashing import format_instant, parse_instant
from domain.partner import Partner, PartnerState
from domain.personal import Disclosed, disclose, stored_seal
from domain.values import FROM_STORE, EventData

_SNAPSHOT_TOPIC = get_topic(Partner.Snapshot)
_SNAPSHOT_STATE: TypeAdapter[PartnerState] = TypeAdapter(PartnerState)
_STATE_KEYS = frozenset(PartnerState.__annotations__)

__all__ = [
    "DATA_MODELS",
    "EVENT_CLASSES",
    "DisclosedNotification",
    "DisclosedStoredEvent",
    "PersonalStoredEvent",
    "TypedMapper",
    "UndecodableEvent",
    "UnreadableSnapshot",
    "data_model_of",
    "public_event",
    "stream_type_of",
]


def _event_classes(aggregate: type[ChainedAggregate]) -> list[type[ChainedAggregate.Event]]:
    return [
        value
        for value in vars(aggregate).values()
        if isinstance(value, type)
        and issubclass(value, ChainedAggregate.Event)
        and "data" in value.__annotations__
    ]


@cache
def data_model_of(event_class: type[ChainedAggregate.Event]) -> type[EventData]:
    model: type[EventData] = get_type_hints(event_class)["data"]
    assert issubclass(model, EventData)
    return model


EVENT_CLASSES: dict[str, type[ChainedAggregate.Event]] = {
    data_model_of(cls).TYPE: cls for agg in (Partner, Coalition) for cls in _event_classes(agg)
}
DATA_MODELS: dict[str, type[EventData]] = {t: data_model_of(c) for t, c in EVENT_CLASSES.items()}
_AGGREGATE_OF: dict[type[Any], type[ChainedAggregate]] = {
    cls: agg for agg in (Partner, Coalition) for cls in _event_classes(agg)
}


def stream_type_of(event: ChainedAggregate.Event) -> str:
    return _AGGREGATE_OF[type(event)].STREAM_TYPE


@cache
def _resolve(topic: str) -> type[ChainedAggregate.Event]:
    cls: type[ChainedAggregate.Event] = resolve_topic(topic)
    assert issubclass(cls, ChainedAggregate.Event), topic
    return cls


class UnreadableSnapshot(MapperDeserialisationError):
    """A stored snapshot does not decode (written for an older state, say): the application
    loads the partner from its events instead."""


class UndecodableEvent(MapperDeserialisationError, DamagedEvent):
    """The library's error for a stored event that does not decode, carrying which one."""

    def __init__(self, stream_id: str, version: int, position: int | None, reason: str) -> None:
        DamagedEvent.__init__(self, stream_id, version, position, reason)


@dataclass(frozen=True)
class PersonalStoredEvent(StoredEvent):
    """A stored event on its way to the recorder with its personal values for the
    personal-data table (``rows``: (subject, plaintext), domain.personal.Seal.plaintexts),
    which the recorder encrypts under each subject's key in the transaction that inserts the
    event."""

    rows: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class DisclosedStoredEvent(StoredEvent):
    """A stored event read back with its disclosed personal values (None: none are held)."""

    disclosed: Disclosed | None = None


@dataclass(frozen=True)
class DisclosedNotification(Notification):
    """A notification read back with its disclosed personal values (None: none are held)."""

    disclosed: Disclosed | None = None


def _disclosed_of(stored_event: StoredEvent) -> Disclosed | None:
    """The personal values a stored event carries: read back by the recorder, or on their
    way to it."""
    if isinstance(stored_event, PersonalStoredEvent):
        found: dict[str, tuple[str, Any]] = {}
        for _, plaintext in stored_event.rows:
            document = orjson.loads(plaintext)
            found.update({name: (pair[0], pair[1]) for name, pair in document.items()})
        return found
    disclosed: Disclosed | None = getattr(stored_event, "disclosed", None)
    return disclosed


class TypedMapper(Mapper[UUID]):
    """Maps ledger events to stored events and back, with orjson and the payload models."""

    def __init__(self) -> None:
        # The base class wants a transcoder; this mapper encodes by itself and never calls it.
        super().__init__(transcoder=JSONTranscoder())

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        if isinstance(domain_event, Partner.Snapshot):
            return _stored_snapshot(domain_event)
        event: ChainedAggregate.Event = domain_event
        state: dict[str, Any] = {
            "occurred_at": format_instant(event.occurred_at),
            "recorded_at": format_instant(event.timestamp),
            "recorded_by": event.recorded_by,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
            "data": event.stored_data(),
        }
        class_version = getattr(type(event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        if event.seal is not None and event.seal.disclosed:
            return PersonalStoredEvent(
                originator_id=event.originator_id,
                originator_version=event.originator_version,
                topic=get_topic(type(event)),
                state=orjson.dumps(state),
                rows=tuple(event.seal.plaintexts(event.subject_id)),
            )
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=get_topic(type(event)),
            state=orjson.dumps(state),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        if stored_event.topic == _SNAPSHOT_TOPIC:
            return _snapshot_of(stored_event)
        try:
            cls = _resolve(stored_event.topic)
            state = orjson.loads(stored_event.state)
            from_version = state.pop("class_version", 1)
            while from_version < getattr(cls, "class_version", 1):
                getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
                from_version += 1
            stream_id = (
                stored_event.originator_id
                if isinstance(stored_event.originator_id, UUID)
                else UUID(stored_event.originator_id)
            )
            disclosed = _disclosed_of(stored_event)
            stored_data = state["data"]
            fields = {
                "originator_id": stream_id,
                "originator_version": stored_event.originator_version,
                "timestamp": parse_instant(state["recorded_at"]),
                "occurred_at": parse_instant(state["occurred_at"]),
                "recorded_by": state["recorded_by"],
                "prev_hash": state["prev_hash"],
                "hash": state["hash"],
                # Read back as recorded: the door's checks (values.FROM_STORE) never refuse history.
                "data": data_model_of(cls).model_validate(
                    disclose(stored_data, disclosed, str(stream_id)), context=FROM_STORE
                ),
                "seal": stored_seal(stored_data, disclosed),
            }
            if issubclass(cls, Aggregate.Created):
                fields["originator_topic"] = get_topic(_AGGREGATE_OF[cls])
        except Exception as error:
            position = stored_event.id if isinstance(stored_event, Notification) else None
            raise UndecodableEvent(
                str(stored_event.originator_id),
                stored_event.originator_version,
                position,
                str(error),
            ) from error
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", fields)
        return event


def _stored_snapshot(snapshot: Partner.Snapshot) -> StoredEvent:
    if set(snapshot.state) != _STATE_KEYS:
        odd = sorted(set(snapshot.state) ^ _STATE_KEYS)
        msg = f"a partner's state has {odd}, unlike PartnerState"
        raise ValueError(msg)
    document = {
        "timestamp": format_instant(snapshot.timestamp),
        "topic": snapshot.topic,
        "state": _SNAPSHOT_STATE.dump_python(cast(PartnerState, snapshot.state), mode="json"),
    }
    return StoredEvent(
        originator_id=snapshot.originator_id,
        originator_version=snapshot.originator_version,
        topic=_SNAPSHOT_TOPIC,
        state=orjson.dumps(document),
    )


def _snapshot_of(stored: StoredEvent) -> Partner.Snapshot:
    try:
        document = orjson.loads(stored.state)
        state = _SNAPSHOT_STATE.validate_python(document["state"], context=FROM_STORE)
        return Partner.Snapshot(
            originator_id=stored.originator_id
            if isinstance(stored.originator_id, UUID)
            else UUID(stored.originator_id),
            originator_version=stored.originator_version,
            timestamp=parse_instant(document["timestamp"]),
            topic=document["topic"],
            state=dict(state),
        )
    except Exception as error:
        msg = f"snapshot of {stored.originator_id} at version {stored.originator_version}: {error}"
        raise UnreadableSnapshot(msg) from error


def public_event(event: ChainedAggregate.Event, position: int) -> dict[str, Any]:
    """An event in the shape of ``GET /v1/events`` and ``pledger export events`` (SPEC §5)."""
    return {
        "position": position,
        "stream_id": str(event.originator_id),
        "stream_type": stream_type_of(event),
        "version": event.originator_version,
        "type": event.data.TYPE,
        "occurred_at": format_instant(event.occurred_at),
        "recorded_at": format_instant(event.timestamp),
        "recorded_by": event.recorded_by,
        "data": event.hashed_data(),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        **_disclosure(event),
    }


def _disclosure(event: ChainedAggregate.Event) -> dict[str, Any]:
    """Beside a format 2 event in the export: ``disclosed`` {field: {value, salt}} for a
    verifier to check against the commitments in ``data.personal`` (empty once erased)."""
    if event.seal is None:
        return {}
    return {
        "disclosed": {
            name: {"value": value, "salt": salt}
            for name, (salt, value) in sorted(event.seal.disclosed.items())
        }
    }
