"""Partners' snapshots on a real store, SQLite and PostgreSQL alike (issue 17 item 6).

* A load after a restart reads the latest snapshot and only the events recorded after it,
  and gives the state a replay of every event gives, retractions included.
* Only each partner's latest snapshot is kept; one is saved with every retraction.
* An erasure deletes the partner's snapshots in its transaction: no snapshot holds an erased
  value, and the next one is taken from the erased state.
* A copy leaves snapshots behind (the target retakes them), a backup holds none, and neither
  the log nor its verification sees them.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from api.moving import backup_sqlite, copy_ledger
from api.recorders import SQLITE_SNAPSHOTS
from api.settings import Settings
from api.wiring import open_ledger
from domain import application
from domain.application import Partnerships
from domain.errors import LedgerError
from domain.partner import Partner
from domain.values import (
    CommitmentMade,
    ContactMade,
    EntryRetracted,
    ErasureReason,
    EventData,
    PartnerRegistered,
    PaymentMade,
    ProfileUpdated,
)
from projections.audit import verify_log
from tests.domain.test_application import STAMP

EVERY = 10
NAME = "Zebulon Quartermaine"
PERSON = "Philippa Ostrander"
NOT_STATE = {"entries", "keeps_history", "snapshot_version"}


@pytest.fixture(autouse=True)
def snapshot_every_ten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(application, "SNAPSHOT_EVERY", EVERY)


@pytest.fixture
def ledgers(settings: Settings) -> Iterator[list[Partnerships]]:
    """Open ledgers on one store; ``reopen`` as a restarted server would."""
    opened: list[Partnerships] = []
    yield opened
    for ledger in opened:
        ledger.close()


def reopen(settings: Settings, opened: list[Partnerships]) -> Partnerships:
    ledger = open_ledger(settings)
    opened.append(ledger)
    return ledger


def contact() -> ContactMade:
    return ContactMade.model_validate({"channel": "phone", "direction": "inbound"})


def register(ledger: Partnerships) -> UUID:
    data = PartnerRegistered.model_validate(
        {
            "name": NAME,
            "kind": "organization",
            "communities": ["Quartermaine Street"],
            "contacts": {"emails": ["zq@example.org"], "people": [{"name": PERSON}]},
        }
    )
    return ledger.register_partner(data, STAMP).stream_id


def commitment(commitment_id: str) -> CommitmentMade:
    return CommitmentMade.model_validate(
        {
            "commitment_id": commitment_id,
            "owed_by": "us",
            "description": "Stipends",
            "due_on": "2024-04-01",
            "resource": "financial",
        }
    )


def payment(commitment_id: str) -> PaymentMade:
    return PaymentMade.model_validate(
        {"amount": "10.00", "currency": "USD", "purpose": "stipend", "commitment_id": commitment_id}
    )


def state(partner: Partner) -> dict[str, Any]:
    return {k: v for k, v in vars(partner).items() if k not in NOT_STATE}


def counting_reads(ledger: Partnerships, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many events each stream read of the log returns."""
    reads: list[int] = []
    recorder: Any = ledger.recorder
    select = recorder.select_events

    def counted(*args: Any, **kwargs: Any) -> Any:
        found = select(*args, **kwargs)
        reads.append(len(found))
        return found

    monkeypatch.setattr(recorder, "select_events", counted)
    return reads


def snapshot_states(ledger: Partnerships, partner_id: UUID) -> list[bytes]:
    recorder: Any = ledger.recorder
    return [s.state for s in recorder.snapshot_recorder().select_events(partner_id)]


def test_a_load_after_a_restart_reads_the_snapshot_and_only_the_later_events(
    settings: Settings, ledgers: list[Partnerships], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = reopen(settings, ledgers)
    partner_id = register(ledger)
    for _ in range(24):
        ledger.record(partner_id, contact(), STAMP)
    # Taken at versions 10 and 20; only the latest is kept.
    assert [s.originator_version for s in ledger.snapshots.get(partner_id)] == [20]  # type: ignore[union-attr]

    restarted = reopen(settings, ledgers)
    reads = counting_reads(restarted, monkeypatch)
    partner = restarted.get_partner(partner_id)

    assert reads == [5]  # versions 21 to 25
    assert partner.version == 25
    assert partner.entries == {}
    assert state(partner) == state(restarted.get_partner(partner_id, with_history=True))
    # A write after the restart: the same small read, and the next snapshot at 30.
    reads.clear()
    for _ in range(5):
        restarted.record(partner_id, contact(), STAMP)
    assert reads[0] == 5
    assert [s.originator_version for s in restarted.snapshots.get(partner_id)] == [30]  # type: ignore[union-attr]


def test_a_retraction_is_saved_with_a_snapshot_and_loads_as_a_full_replay_does(
    settings: Settings, ledgers: list[Partnerships], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = reopen(settings, ledgers)
    partner_id = register(ledger)
    ledger.record(partner_id, commitment("C-1"), STAMP)  # 2
    ledger.record(partner_id, payment("C-1"), STAMP)  # 3
    ledger.record(partner_id, contact(), STAMP)  # 4
    retracted = ledger.record(partner_id, EntryRetracted(version=3, reason="twice"), STAMP)

    assert [s.originator_version for s in ledger.snapshots.get(partner_id)] == [5]  # type: ignore[union-attr]
    restarted = reopen(settings, ledgers)
    reads = counting_reads(restarted, monkeypatch)
    partner = restarted.get_partner(partner_id)
    assert reads == [0]
    assert retracted.version == 5
    assert partner.retracted == {3}
    assert partner.commitments["C-1"].dependents == []
    assert state(partner) == state(restarted.get_partner(partner_id, with_history=True))


def test_random_histories_load_from_snapshots_as_a_full_replay_does(
    settings: Settings, ledgers: list[Partnerships]
) -> None:
    ledger = reopen(settings, ledgers)
    partner_id = register(ledger)
    rng = random.Random(17)
    for n in range(60):
        choices: list[EventData] = [
            contact(),
            commitment(f"C-{rng.randrange(5)}"),
            payment(f"C-{rng.randrange(5)}"),
            ProfileUpdated.model_validate({"name": f"{NAME} {n}"}),
            EntryRetracted(version=rng.randrange(2, n + 3), reason="mistake"),
            EntryRetracted(version=rng.randrange(2, n + 3), reason="mistake"),
        ]
        with contextlib.suppress(LedgerError):
            ledger.record(partner_id, rng.choice(choices), STAMP)
        if n % 7 == 0:
            restarted = reopen(settings, ledgers)
            assert state(restarted.get_partner(partner_id)) == state(
                restarted.get_partner(partner_id, with_history=True)
            )
    assert state(ledger.get_partner(partner_id)) == state(
        reopen(settings, ledgers).get_partner(partner_id, with_history=True)
    )


def test_an_erasure_leaves_no_snapshot_holding_an_erased_value(
    settings: Settings, ledgers: list[Partnerships]
) -> None:
    ledger = reopen(settings, ledgers)
    partner_id = register(ledger)
    for _ in range(EVERY):
        ledger.record(partner_id, contact(), STAMP)
    assert any(PERSON.encode() in s for s in snapshot_states(ledger, partner_id))

    ledger.erase_personal_data(partner_id, ErasureReason.REQUEST, STAMP, contact=PERSON)

    assert snapshot_states(ledger, partner_id) == []
    for _ in range(EVERY):
        ledger.record(partner_id, contact(), STAMP)
    (retaken,) = snapshot_states(ledger, partner_id)
    assert PERSON.encode() not in retaken
    assert NAME.encode() in retaken  # only the contact person was erased

    ledger.erase_personal_data(partner_id, ErasureReason.REQUEST, STAMP)

    assert snapshot_states(ledger, partner_id) == []
    for _ in range(EVERY):
        ledger.record(partner_id, contact(), STAMP)
    (retaken,) = snapshot_states(ledger, partner_id)
    for value in (NAME, PERSON, "Quartermaine", "zq@example.org"):
        assert value.encode() not in retaken
    restarted = reopen(settings, ledgers)
    assert state(restarted.get_partner(partner_id)) == state(
        restarted.get_partner(partner_id, with_history=True)
    )


def test_a_copy_leaves_the_snapshots_behind_and_the_target_takes_its_own(
    settings: Settings, ledgers: list[Partnerships], tmp_path: Path
) -> None:
    source = reopen(settings, ledgers)
    partner_id = register(source)
    for _ in range(2 * EVERY + 3):
        source.record(partner_id, contact(), STAMP)
    target = reopen(Settings(db_path=tmp_path / "copy" / "pledger.db"), ledgers)

    copy_ledger(source, target)

    target_recorder: Any = target.recorder
    assert target_recorder.count_snapshots() == 0
    assert verify_log(target).digest == verify_log(source).digest
    target.record(partner_id, contact(), STAMP)  # 25 events since none: one is taken
    assert [s.originator_version for s in target.snapshots.get(partner_id)] == [25]  # type: ignore[union-attr]


def test_the_log_and_its_verification_do_not_see_snapshots(
    settings: Settings, ledgers: list[Partnerships]
) -> None:
    ledger = reopen(settings, ledgers)
    partner_id = register(ledger)
    for _ in range(3 * EVERY):
        ledger.record(partner_id, contact(), STAMP)
    recorder: Any = ledger.recorder
    assert recorder.count_snapshots(partner_id) == 1

    report = verify_log(ledger)

    assert report.ok
    assert [n.originator_version for n in ledger.notifications()] == list(range(1, 32))


def test_a_backup_holds_no_snapshot(sqlite_settings: Settings, tmp_path: Path) -> None:
    ledger = open_ledger(sqlite_settings)
    try:
        partner_id = register(ledger)
        for _ in range(EVERY):
            ledger.record(partner_id, contact(), STAMP)
        assert snapshot_states(ledger, partner_id)
    finally:
        ledger.close()
    backup = tmp_path / "backup.db"

    backup_sqlite(sqlite_settings.db_path, backup)

    with sqlite3.connect(backup) as copy:
        (count,) = copy.execute(f"SELECT COUNT(*) FROM {SQLITE_SNAPSHOTS}").fetchone()
    assert count == 0
    assert NAME.encode() not in backup.read_bytes()
    assert PERSON.encode() not in backup.read_bytes()
