"""Reading the event log for the read side, without rebuilding typed events.

The stored state of every event is plain JSON whose ``data`` is already in the API's shape
(see ``domain.serialization``), so the read side reads it with orjson only. Pages of the global
log, for catching up, come through the library's ``select_notifications``; one stream's events
(with their positions, which the library's ``select_events`` does not return) come from the
log's table by its primary key, with the statements of ``projections.logtable``, which also
holds the one decoding of a stored row into an entry. The rebuild reads the whole log with
those statements too, without notifications (see ``projections.rebuild`` for why).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import get_topic

from domain.chained import ChainedAggregate
from domain.hashing import format_instant, parse_instant
from domain.personal import Disclosed, Vault, decrypt_rows
from domain.serialization import EVENT_CLASSES, stream_type_of
from projections.folds import Entry
from projections.logtable import LogTable, decode_entry, stream_id_text

__all__ = ["LogReader", "entry_of", "entry_of_event", "log_table"]


@cache
def _topics() -> dict[str, tuple[str, str]]:
    """topic -> (event type, stream type)."""
    found: dict[str, tuple[str, str]] = {}
    for type_name, cls in EVENT_CLASSES.items():
        sample: Any = object.__new__(cls)
        found[get_topic(cls)] = (type_name, stream_type_of(sample))
    return found


def entry_of(
    position: int,
    stream_id: str,
    version: int,
    topic: str,
    state: bytes,
    disclosed: Disclosed | None = None,
    *,
    shown: bool = True,
) -> Entry:
    """An entry from a stored event's raw columns (see ``logtable.decode_entry``)."""
    return decode_entry(
        _topics(), position, stream_id, version, topic, state, disclosed, shown=shown
    )


def entry_of_event(event: ChainedAggregate.Event, position: int) -> Entry:
    """An entry from a typed event (as the writer and the library's projection runner have
    them): the same entry :func:`entry_of` decodes from its stored row, built without a round
    trip through JSON (this runs for every event written)."""
    return Entry(
        position,
        str(event.originator_id),
        event.originator_version,
        event.type,
        event.occurred_at.astimezone(UTC),
        event.shown_data(),
        format_instant(event.timestamp),
        event.recorded_by,
        event.prev_hash,
        event.hash,
        False,  # retracted
        stream_type_of(event),
    )


def log_table(recorder: ApplicationRecorder) -> LogTable:
    """The log's table behind the library's recorder, and how another process connects to it
    (the connection settings of the recorder's own pool)."""
    datastore: Any = recorder.datastore  # type: ignore[attr-defined]
    table = recorder.events_table_name  # type: ignore[attr-defined]
    postgres = isinstance(recorder, PostgresApplicationRecorder)
    vault = Vault.of_store(postgres=postgres, schema=datastore.schema if postgres else "")
    if postgres:
        settings = ("dbname", "host", "port", "user", "password")
        return LogTable(
            postgres=True,
            name=f'"{datastore.schema}"."{table}"',
            topics=_topics(),
            connect_args={k: v for k, v in datastore.pool.kwargs.items() if k in settings},
            vault=vault,
        )
    return LogTable(
        postgres=False,
        name=table,
        topics=_topics(),
        connect_args={"database": datastore.pool.db_name, "uri": True},
        vault=vault,
    )


KEEP_ENTRIES = 50_000  # decoded entries kept across requests (some tens of MB)


class LogReader:
    """The read side's view of the event log: pages by position, streams by id."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self.recorder = recorder
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, list[Entry]] = OrderedDict()
        self._kept_entries = 0
        self.table = log_table(recorder)

    def page(self, after: int, limit: int) -> list[Entry]:
        """The entries after position ``after``, at most ``limit`` of them, in position order
        (the library's ``select_notifications``, read as entries)."""
        notifications = self.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        disclosed = self._disclosed_events(
            [
                (stream_id_text(n.originator_id), n.originator_version)
                for n in notifications
                if b'"personal":' in n.state
            ]
        )
        return [
            entry_of(
                n.id,
                str(n.originator_id),
                n.originator_version,
                n.topic,
                n.state,
                disclosed.get((stream_id_text(n.originator_id), n.originator_version)),
            )
            for n in notifications
        ]

    def streams(self, stream_ids: Sequence[str]) -> dict[str, list[Entry]]:
        """Every event of each stream, in version order, with its position.

        Streams read before are kept (entries never change); one indexed query on the
        streams' last versions tells which of them have grown since and must be read again.
        """
        found: dict[str, list[Entry]] = {}
        wanted = list(dict.fromkeys(stream_ids))
        with self._lock:
            known = {sid: self._kept[sid] for sid in wanted if sid in self._kept}
        if known:
            for sid, version in self._last_versions(list(known)).items():
                if known[sid] and known[sid][-1].version == version:
                    found[sid] = known[sid]
            with self._lock:
                for sid in found:
                    if sid in self._kept:
                        self._kept.move_to_end(sid)
        missing = [sid for sid in wanted if sid not in found]
        read = self._read_streams(missing)
        with self._lock:
            for sid, entries in read.items():
                self._keep(sid, entries)
        found.update(read)
        return {sid: found.get(sid, []) for sid in wanted}

    def _keep(self, stream_id: str, entries: list[Entry]) -> None:
        old = self._kept.pop(stream_id, None)
        self._kept_entries -= len(old) if old else 0
        if not entries:
            return
        self._kept[stream_id] = entries
        self._kept_entries += len(entries)
        while self._kept_entries > KEEP_ENTRIES:
            _, dropped = self._kept.popitem(last=False)
            self._kept_entries -= len(dropped)

    def last_versions(self, stream_ids: list[str]) -> dict[str, int]:
        """Each stream's last version in the log now (streams with no events are absent)."""
        return self._last_versions(stream_ids)

    def _last_versions(self, stream_ids: list[str]) -> dict[str, int]:
        datastore: Any = self.recorder.datastore  # type: ignore[attr-defined]
        versions: dict[str, int] = {}
        for start in range(0, len(stream_ids), 500):
            chunk = stream_ids[start : start + 500]
            with datastore.transaction(commit=False) as c:
                c.execute(
                    self.table.versions_statement(len(chunk)), self.table.streams_params(chunk)
                )
                rows = c.fetchall()
            versions.update({stream_id_text(row["originator_id"]): row["version"] for row in rows})
        return versions

    def _read_streams(self, stream_ids: Sequence[str]) -> dict[str, list[Entry]]:
        found: dict[str, list[Entry]] = {sid: [] for sid in stream_ids}
        if not stream_ids:
            return found
        datastore: Any = self.recorder.datastore  # type: ignore[attr-defined]
        for start in range(0, len(stream_ids), 500):
            chunk = list(stream_ids[start : start + 500])
            with datastore.transaction(commit=False) as c:
                c.execute(
                    self.table.streams_statement(len(chunk)), self.table.streams_params(chunk)
                )
                rows = c.fetchall()
            disclosed = self._disclosed(rows)
            for row in rows:
                sid = stream_id_text(row["originator_id"])
                found.setdefault(sid, []).append(
                    entry_of(
                        row["position"],
                        sid,
                        row["originator_version"],
                        row["topic"],
                        bytes(row["state"]),
                        disclosed.get((sid, row["originator_version"])),
                    )
                )
        return found

    def _disclosed(self, rows: Sequence[Any]) -> dict[Any, Disclosed]:
        """The personal values held for the events of ``rows`` (domain.personal)."""
        streams = sorted(
            {
                stream_id_text(row["originator_id"])
                for row in rows
                if b'"personal":' in bytes(row["state"])
            }
        )
        vault = self.table.vault
        found: dict[Any, Disclosed] = {}
        for start in range(0, len(streams), 400):
            chunk = streams[start : start + 400]
            assert vault is not None
            found.update(self._vault_rows(vault.streams_statement(len(chunk)), chunk))
        return found

    def _disclosed_events(self, pairs: Sequence[tuple[str, int]]) -> dict[Any, Disclosed]:
        """The personal values held for these (stream id, version) events."""
        vault = self.table.vault
        found: dict[Any, Disclosed] = {}
        for start in range(0, len(pairs), 400):
            chunk = pairs[start : start + 400]
            assert vault is not None
            statement = vault.events_statement(len(chunk))
            found.update(self._vault_rows(statement, vault.event_params(chunk)))
        return found

    def _vault_rows(self, statement: str, params: Sequence[Any]) -> dict[Any, Disclosed]:
        datastore: Any = self.recorder.datastore  # type: ignore[attr-defined]
        with datastore.transaction(commit=False) as c:
            c.execute(statement, tuple(params))
            rows = c.fetchall()
        columns = ("originator_id", "originator_version", "subject_id", "nonce", "sealed", "key")
        return decrypt_rows(tuple(row[name] for name in columns) for row in rows)

    def moments(self, after: int, upto: int, limit: int) -> list[tuple[int, str, datetime]] | None:
        """``(position, event type, occurred_at)`` of every event in (after, upto], in position
        order, read without disclosing any personal value; None when there are more than
        ``limit`` of them (the caller then does without)."""
        found: list[tuple[int, str, datetime]] = []
        topics = _topics()
        while after < upto:
            page = self.recorder.select_notifications(
                start=after, limit=min(1000, limit + 1), stop=upto, inclusive_of_start=False
            )
            if not page:
                break
            for n in page:
                occurred = parse_instant(orjson.loads(n.state)["occurred_at"])
                found.append((n.id, topics[n.topic][0], occurred))
            if len(found) > limit:
                return None
            after = page[-1].id
        return found

    def erased_after(self, after: int, upto: int) -> bool:
        """Whether a ``personal_data_erased`` event was recorded in (after, upto]: the log
        then reads placeholders where it read personal values before."""
        if after >= upto:
            return False
        topics = [t for t, (name, _) in _topics().items() if name == "personal_data_erased"]
        return bool(
            self.recorder.select_notifications(
                start=after, limit=1, stop=upto, topics=topics, inclusive_of_start=False
            )
        )

    def stream(self, stream_id: str) -> list[Entry]:
        return self.streams([stream_id])[stream_id]

    def hashes(self, after: int, upto: int) -> list[str]:
        """The stored hash of every event in (after, upto], in position order."""
        found: list[str] = []
        while after < upto:
            page = self.recorder.select_notifications(
                start=after, limit=1000, stop=upto, inclusive_of_start=False
            )
            if not page:
                break
            found.extend(orjson.loads(n.state)["hash"] for n in page)
            after = page[-1].id
        return found
