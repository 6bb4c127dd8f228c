"""Signed checkpoints and the tree's proofs (issue 15 items 2 and 3), on both stores.

Given a ledger with a coalition, two members and their events, `pledger checkpoint` signs
{position, tree size, digest, tree head, time} with the ledger's Ed25519 key (made on first use,
owner-only); the API lists it, serves the key and RFC 9162 proofs that verify against the tree
heads. When an event before the checkpoint's position is edited, reordered, removed or the log is
truncated behind the ledger's back (in a ledger made for the test), `pledger verify --checkpoint`
fails naming the checkpoint, even after `pledger rebuild` made the views agree with the damage.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api.settings import Settings
from domain.merkle import event_leaf_hash, verify_consistency, verify_inclusion
from projections.checkpoints import Checkpoint, SigningKey, SigningKeyError, verify_signature
from tests.api.conftest import Api
from tests.api.test_audit_cli import edit_state, run_pledger
from tests.api.test_log_against_views import _delete_from


def _ledger(api: Api) -> dict[str, Any]:
    coalition = api.form_coalition("Coalición del Sur")
    first, second = api.register("Fondo Comunitario"), api.register("Huerta Viva")
    api.join(coalition, first)
    api.join(coalition, second)
    for n in range(6):
        api.append(
            first if n % 2 else second,
            "payment_made",
            f"2025-02-{3 + n:02d}T10:00:00Z",
            amount=f"{1000 + n}.00",
            currency="USD",
            purpose="grant",
        )
    return {"coalition": coalition, "members": [first, second]}


def _checkpoint(settings: Settings, path: Path) -> dict[str, Any]:
    made = run_pledger(settings, "checkpoint", "--output", str(path))
    assert made.returncode == 0, made.stderr
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_a_checkpoint_is_signed_by_the_key_the_ledger_publishes(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    _ledger(api)
    end = api.event_count()

    document = _checkpoint(settings, tmp_path / "checkpoint.json")

    key = run_pledger(settings, "audit", "key")
    assert key.returncode == 0, key.stderr
    assert key.stdout.strip() == document["public_key"] == api.read("/v1/audit/key")["public_key"]
    checkpoint = Checkpoint.from_dict(document)
    assert (checkpoint.position, checkpoint.tree_size) == (end, end)
    assert checkpoint.signed_by(document["public_key"])
    assert checkpoint.digest == api.verified()["digest"]
    listed = api.read("/v1/audit/checkpoints")["checkpoints"]
    assert document in listed
    key_file = settings.signing_key_path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    if not settings.database_url:
        assert key_file.parent == settings.db_path.parent  # beside the database


def test_proofs_verify_against_the_tree_heads(api: Api, settings: Settings) -> None:
    _ledger(api)
    log = api.log()
    size = len(log)
    heads = {}
    for event in log:
        proof = api.read("/v1/audit/proof/inclusion", position=event["position"], tree_size=size)
        leaf = event_leaf_hash(event["hash"])
        assert proof["leaf_hash"] == leaf.hex()
        path = [bytes.fromhex(p) for p in proof["path"]]
        assert verify_inclusion(
            leaf, proof["leaf_index"], size, path, bytes.fromhex(proof["tree_head"])
        )
        heads[size] = proof["tree_head"]
    for first in range(1, size + 1):
        proof = api.read("/v1/audit/proof/consistency", first=first, second=size)
        assert proof["second_head"] == heads[size]
        path = [bytes.fromhex(p) for p in proof["path"]]
        first_head, second_head = bytes.fromhex(proof["first_head"]), bytes.fromhex(heads[size])
        assert verify_consistency(first, size, first_head, second_head, path)
    api.assert_problem(
        api.get("/v1/audit/proof/inclusion", position=1, tree_size=size + 1), 422, "beyond"
    )
    api.assert_problem(api.get("/v1/audit/proof/consistency", first=size + 1), 422, "first")


def test_every_report_carries_its_signature_and_a_covering_checkpoint(api: Api) -> None:
    ledger = _ledger(api)
    for fmt in ("json", "csv", "md", "html"):
        response = api.get(f"/v1/coalitions/{ledger['coalition']}/report", format=fmt)
        assert response.status_code == 200, response.text
        digest = hashlib.sha256(response.content).digest()
        assert response.headers["Pledger-Report-SHA256"] == digest.hex()
        key = response.headers["Pledger-Public-Key"]
        assert verify_signature(key, response.headers["Pledger-Report-Signature"], digest)
        checkpoint = Checkpoint.from_dict(json.loads(response.headers["Pledger-Checkpoint"]))
        assert checkpoint.signed_by(key)
        if fmt == "json":
            assert checkpoint.position >= response.json()["position"]


# ---- a log that no longer extends a checkpoint kept outside -----------------------------------


def _swap_adjacent(settings: Settings, position: int) -> None:
    """Exchange the stored events at ``position`` and ``position + 1`` (two streams)."""
    columns = "originator_id, originator_version, topic, state"
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as pg:
            rows = {
                p: pg.execute(
                    f"SELECT {columns} FROM pledger_events WHERE notification_id = %s", (p,)
                ).fetchone()
                for p in (position, position + 1)
            }
            update = (
                "UPDATE pledger_events SET originator_id = %s, originator_version = %s, "
                "topic = %s, state = %s WHERE notification_id = %s"
            )
            a, b = rows[position], rows[position + 1]
            assert a is not None
            assert b is not None
            assert a[0] != b[0]
            pg.execute(update, (a[0], -1, a[2], a[3], position))
            pg.execute(update, (*a, position + 1))
            pg.execute(update, (*b, position))
        return
    import sqlite3

    lite = sqlite3.connect(settings.db_path)
    try:
        with lite:
            rows = {
                p: lite.execute(
                    f"SELECT {columns} FROM stored_events WHERE rowid = ?", (p,)
                ).fetchone()
                for p in (position, position + 1)
            }
            update = (
                "UPDATE stored_events SET originator_id = ?, originator_version = ?, topic = ?, "
                "state = ? WHERE rowid = ?"
            )
            a, b = rows[position], rows[position + 1]
            assert a is not None
            assert b is not None
            assert a[0] != b[0]
            lite.execute(update, (a[0], -1, a[2], a[3], position))
            lite.execute(update, (*a, position + 1))
            lite.execute(update, (*b, position))
    finally:
        lite.close()


def _edit(settings: Settings, end: int) -> None:
    """A careful forger's edit: the amount changed and the event's own hash recomputed."""
    position = end - 3

    def change(state: dict[str, Any]) -> None:
        state["data"]["amount"] = "1.00"
        document = {
            k: state[k] for k in ("occurred_at", "recorded_at", "recorded_by", "data", "prev_hash")
        } | {"stream_id": event["stream_id"], "version": event["version"], "type": event["type"]}
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        state["hash"] = hashlib.sha256(text.encode()).hexdigest()

    event = next(e for e in _exported(settings) if e["position"] == position)
    edit_state(settings, position, change)


def _exported(settings: Settings) -> list[dict[str, Any]]:
    result = run_pledger(settings, "export", "events")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.split("\n") if line]


def _reorder(settings: Settings, end: int) -> None:
    _swap_adjacent(settings, end - 1)


def _remove(settings: Settings, end: int) -> None:
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url) as pg:
            pg.execute("DELETE FROM pledger_events WHERE notification_id = %s", (end - 4,))
        return
    import sqlite3

    lite = sqlite3.connect(settings.db_path)
    with lite:
        lite.execute("DELETE FROM stored_events WHERE rowid = ?", (end - 4,))
    lite.close()


def _truncate(settings: Settings, end: int) -> None:
    assert _delete_from(settings, end - 1) == 2


TAMPERING: dict[str, Callable[[Settings, int], None]] = {
    "edited": _edit,
    "reordered": _reorder,
    "removed": _remove,
    "truncated": _truncate,
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_verify_with_a_checkpoint_kept_outside_catches_the_damage(
    api: Api, settings: Settings, tmp_path: Path, tampering: str
) -> None:
    _ledger(api)
    end = api.event_count()
    path = tmp_path / "emailed-checkpoint.json"
    _checkpoint(settings, path)
    intact = run_pledger(settings, "verify", "--checkpoint", str(path))
    assert intact.returncode == 0, intact.stderr
    assert f"extends the checkpoint at position {end}" in intact.stdout

    TAMPERING[tampering](settings, end)
    # The views made again from the damaged log: they, and plain verify, now agree with it.
    assert run_pledger(settings, "rebuild").returncode == 0

    caught = run_pledger(settings, "verify", "--checkpoint", str(path))
    assert caught.returncode == 1
    assert f"MISMATCH position {end}: the log" in caught.stderr, caught.stderr
    assert "checkpoint" in caught.stderr


def test_a_forged_checkpoint_file_fails(api: Api, settings: Settings, tmp_path: Path) -> None:
    _ledger(api)
    path = tmp_path / "checkpoint.json"
    document = _checkpoint(settings, path)
    document["tree_size"] -= 1
    path.write_text(json.dumps(document))

    forged = run_pledger(settings, "verify", "--checkpoint", str(path))

    assert forged.returncode == 1
    assert "signature is not this ledger's key's" in forged.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"position": 1}')
    refused = run_pledger(settings, "verify", "--checkpoint", str(broken))
    assert refused.returncode == 2
    assert "tree_size" in refused.stderr


def test_a_signing_key_others_can_read_is_refused(sqlite_settings: Settings) -> None:
    key_file = sqlite_settings.signing_key_path
    assert key_file == sqlite_settings.db_path.with_name("pledger.ed25519")
    first = SigningKey.open(key_file).public_key
    assert SigningKey.open(key_file).public_key == first  # made once, then read
    key_file.chmod(0o644)

    with pytest.raises(SigningKeyError, match="chmod 600"):
        SigningKey.open(key_file)
    refused = run_pledger(sqlite_settings, "audit", "key")
    assert refused.returncode == 2
    assert "chmod 600" in refused.stderr


def test_the_signing_key_file_can_be_named(tmp_path: Path) -> None:
    named = tmp_path / "keys" / "ledger.ed25519"
    settings = Settings.from_env(
        {"PLEDGER_DB": str(tmp_path / "pledger.db"), "PLEDGER_SIGNING_KEY_FILE": str(named)}
    )
    assert settings.signing_key_path == named
    on_postgres = Settings.from_env(
        {"PLEDGER_DATABASE_URL": "postgresql://u@db.example:5433/books"}
    )
    assert on_postgres.signing_key_path.name == "books@db.example_5433.ed25519"
    SigningKey.open(named)
    assert stat.S_IMODE(named.stat().st_mode) == 0o600


def test_a_steward_signs_and_downloads_a_checkpoint_from_the_audit_page(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    _ledger(api)
    end = api.event_count()
    steward = api.app.state.services.tokens.issue("steward", "audit page steward")
    api.client.get(f"/signin?token={steward}")
    page = api.client.get("/audit")
    assert "No checkpoint has been signed yet" in page.text
    csrf = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
    assert csrf is not None

    signed = api.client.post(
        "/audit/checkpoint", data={"csrftoken": csrf[1]}, follow_redirects=False
    )

    assert signed.status_code == 303
    page = api.client.get("/audit")
    assert api.read("/v1/audit/key")["public_key"] in page.text
    assert f'href="/audit/checkpoints/{end}.json"' in page.text
    download = api.client.get(f"/audit/checkpoints/{end}.json")
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    path = tmp_path / "kept-outside.json"
    path.write_bytes(download.content)
    assert json.loads(download.content) in api.read("/v1/audit/checkpoints")["checkpoints"]
    kept = run_pledger(settings, "verify", "--checkpoint", str(path))
    assert kept.returncode == 0, kept.stderr
    assert api.client.get("/audit/checkpoints/999999.json").status_code == 404
