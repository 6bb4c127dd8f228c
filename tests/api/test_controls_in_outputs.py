"""Issue 10, item 5: text recorded before the door refused control characters never reaches a
person raw: ``pledger agenda`` on a terminal, its .ics, and the coalition report files show
each control character visibly. Run on both stores (PostgreSQL cannot hold a NUL at all, so
the recorded name there carries BEL, ESC and C1 controls).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from api.settings import Settings
from domain.application import Partnerships
from domain.chained import Stamp
from domain.values import FROM_STORE, CoalitionFormed, MemberJoined, PartnerRegistered
from tests.api.test_import import pledger

RAW_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# An ESC sequence that would retitle the terminal, one that clears it, BEL and C1 CSI.
HOSTILE_NAME = "Eastside\x1b]0;owned\x07 Union\x1b[2J\x9b0m"
SHOWN = "Eastside\u241b]0;owned\u2407 Union\u241b[2J\ufffd0m"
LONG_AGO = Stamp(datetime(2025, 1, 6, 10, 0, tzinfo=UTC), "steward:legacy")


def record_before_the_checks(ledger: Partnerships) -> tuple[str, str]:
    """A partner and a coalition named as the door would now refuse, recorded the way an
    event from before the checks sits in the store."""
    registered = PartnerRegistered.model_validate(
        {"name": HOSTILE_NAME, "kind": "organization"}, context=FROM_STORE
    )
    partner_id = ledger.register_partner(registered, LONG_AGO).stream_id
    formed = CoalitionFormed.model_validate({"name": HOSTILE_NAME}, context=FROM_STORE)
    coalition_id = ledger.form_coalition(formed, LONG_AGO).stream_id
    ledger.join_coalition(coalition_id, MemberJoined(partner_id=partner_id), LONG_AGO)
    return str(partner_id), str(coalition_id)


def test_the_terminal_agenda_shows_controls_visibly(
    settings: Settings, ledger: Partnerships
) -> None:
    record_before_the_checks(ledger)

    result = pledger(settings, "agenda", "--as-of", "2025-06-01")

    assert result.exit_code == 0, result.output
    assert SHOWN in result.stdout
    assert not RAW_CONTROLS.search(result.stdout)


def test_the_agenda_ics_has_no_control_byte_but_cr_lf_and_htab(
    settings: Settings, ledger: Partnerships
) -> None:
    record_before_the_checks(ledger)

    result = pledger(settings, "agenda", "--as-of", "2025-06-01", "--format", "ics")

    assert result.exit_code == 0, result.output
    ics = result.stdout_bytes
    assert b"BEGIN:VEVENT" in ics
    assert not re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", ics.replace(b"\r\n", b""))
    assert not RAW_CONTROLS.search(ics.decode("utf-8"))


@pytest.mark.parametrize("fmt", ["csv", "md", "html"])
def test_the_report_files_show_controls_visibly(
    settings: Settings, ledger: Partnerships, fmt: str
) -> None:
    _, coalition_id = record_before_the_checks(ledger)

    result = pledger(settings, "report", coalition_id, "--format", fmt)

    assert result.exit_code == 0, result.output
    assert not RAW_CONTROLS.search(result.stdout)
    assert "Eastside\u241b" in result.stdout  # Markdown escapes the "]" that follows
    assert "0;owned\u2407 Union\u241b" in result.stdout
