"""Issue 10, item 15: smaller faults found on the way.

A busy port is said with the way out (``--port``); the SQLite lock file is ignored by git;
``pledger export events --output FILE`` writes the whole file or leaves it as it was; a write
that starts a new stream refuses ``expected_version`` instead of ignoring it.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from domain.application import Partnerships
from domain.chained import Stamp
from domain.values import CoalitionFormed, PartnerRegistered, PaymentMade, PaymentPurpose
from tests.api.test_audit_cli import write_state
from tests.api.test_import import pledger

REPOSITORY = Path(__file__).resolve().parents[2]
WHEN = Stamp(datetime(2025, 1, 6, 10, 0, tzinfo=UTC), "cli:test")


def test_a_busy_port_is_refused_with_a_hint_to_use_another(sqlite_settings: Settings) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        result = pledger(sqlite_settings, "serve", "--host", "127.0.0.1", "--port", str(port))

    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port" in result.stderr
    assert "Errno" not in result.output


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("path", ["pledger.db.lock", "data/ledger.db.lock", "pledger.db"])
def test_the_sqlite_files_and_their_lock_are_ignored_by_git(path: str) -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path], cwd=REPOSITORY, check=False
    )

    assert ignored.returncode == 0, f"{path} is not in .gitignore"


def test_an_export_that_fails_leaves_the_output_file_as_it_was(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    partner_id = ledger.register_partner(
        PartnerRegistered(name="Eastside", kind="organization"), WHEN
    ).stream_id
    payment = PaymentMade(amount=Decimal("5.00"), currency="USD", purpose=PaymentPurpose.GRANT)
    damaged = ledger.record(partner_id, payment, WHEN).position
    ledger.record(partner_id, payment, WHEN)
    write_state(settings, damaged, b'{"occurred_at": "2026-')
    output = tmp_path / "out" / "ledger.jsonl"
    output.parent.mkdir()
    output.write_bytes(b"the previous export\n")

    result = pledger(settings, "export", "events", "--output", str(output))

    assert result.exit_code == 1
    assert f"version 2 does not decode at position {damaged}" in result.stderr
    assert output.read_bytes() == b"the previous export\n"
    assert [p.name for p in output.parent.iterdir()] == ["ledger.jsonl"]


def test_an_export_that_succeeds_replaces_the_output_file(
    settings: Settings, ledger: Partnerships, tmp_path: Path
) -> None:
    ledger.register_partner(PartnerRegistered(name="Eastside", kind="organization"), WHEN)
    output = tmp_path / "ledger.jsonl"
    output.write_bytes(b"the previous export\n")

    result = pledger(settings, "export", "events", "--output", str(output))

    assert result.exit_code == 0, result.output
    lines = output.read_bytes().splitlines()
    assert len(lines) == 1
    assert b'"type":"partner_registered"' in lines[0]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/partners", {"name": "Eastside", "kind": "organization"}),
        ("/v1/coalitions", {"name": "Valley"}),
    ],
)
@pytest.mark.parametrize("expected_version", [0, 1])
def test_a_new_stream_refuses_expected_version(
    settings: Settings, path: str, body: dict[str, object], expected_version: int
) -> None:
    with TestClient(create_app(settings)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {services.tokens.issue('steward', 'steward:t')}"}

        response = client.post(
            path, json={**body, "expected_version": expected_version}, headers=headers
        )

        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == "expected_version"
        assert services.ledger.last_position() == 0


@pytest.mark.parametrize("name", ["board\x00member", "board\x1b[2J", "board\u202emember"])
def test_a_token_name_with_controls_is_refused(settings: Settings, name: str) -> None:
    # A token's name becomes recorded_by on every event it writes: the door's rules for names.
    result = pledger(settings, "token", "create", "--role", "viewer", "--name", name)

    assert result.exit_code == 1
    assert "error: the token's name holds the" in result.stderr
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", result.output)


def test_a_coalition_token_made_with_an_upper_case_id_reads_its_report(
    settings: Settings, ledger: Partnerships
) -> None:
    # Issue 10 item 14: ids ignore case (RFC 4122 §3), also where the CLI takes one.
    coalition_id = ledger.form_coalition(CoalitionFormed(name="Valley"), WHEN).stream_id
    made = pledger(
        settings,
        "token",
        "create",
        "--role",
        "coalition",
        "--coalition",
        str(coalition_id).upper(),
        "--name",
        "valley",
    )
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()

    with TestClient(create_app(settings)) as client:
        response = client.get(
            f"/v1/coalitions/{coalition_id}/report", headers={"Authorization": f"Bearer {token}"}
        )

    assert response.status_code == 200, response.text
    assert response.json()["coalition"]["id"] == str(coalition_id)
