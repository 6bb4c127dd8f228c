"""Erasing a person's personal data (issue 16): every figure, report number, position, hash and
the digest stay as they were; names and notes read as placeholders; verify still passes; no
file or table of either store holds the erased name, email or summary afterwards."""

from __future__ import annotations

import html
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.settings import Settings
from domain.chained import ChainedAggregate
from domain.personal import erased_name
from tests.api.conftest import Api
from tests.api.test_audit_cli import edit_state

NAME = "Ximena Oyelaran-Quist"
EMAIL = "ximena.oq@example.org"
SUMMARY = "Talked through her migraine accommodations at length"
DESCRIPTION = "Honorarium for Ximena's review panel"
SECRETS = (NAME.encode(), EMAIL.encode(), SUMMARY.encode(), DESCRIPTION.encode())


@dataclass
class World:
    coalition: str
    person: str  # registered in format 1 (as before issue 16), the rest in format 2
    other: str
    commitment: dict[str, Any]


@pytest.fixture
def world(api: Api, monkeypatch: pytest.MonkeyPatch) -> World:
    coalition = api.form_coalition("Valley Coalition")
    with monkeypatch.context() as older:
        older.setattr(ChainedAggregate, "SEAL_PERSONAL_DATA", False)
        person = api.register(NAME, kind="individual", communities=["migraine support group"])
    other = api.register("Eastside Tenants Union")
    for partner in (person, other):
        api.join(coalition, partner)
    api.append(person, "contact_made", "2025-01-08T10:00:00Z", channel="email",
               direction="inbound", summary=f"{SUMMARY}; write to {EMAIL}")  # fmt: skip
    commitment = api.append(person, "commitment_made", "2025-01-09T10:00:00Z", owed_by="us",
                            description=DESCRIPTION, due_on="2025-02-01", resource="financial",
                            amount="250.00", currency="USD", commitment_id="C-1")  # fmt: skip
    api.append(person, "commitment_fulfilled", "2025-01-20T10:00:00Z", commitment_id="C-1",
               note=f"Paid; thanks from {NAME}")  # fmt: skip
    api.append(person, "payment_made", "2025-01-20T11:00:00Z", amount="250.00",
               currency="USD", purpose="compensation", commitment_id="C-1")  # fmt: skip
    api.append(other, "commitment_made", "2025-01-10T10:00:00Z", owed_by="partner",
               description="Host the fair", due_on="2025-03-01", resource="time")  # fmt: skip
    return World(coalition, person, other, commitment)


def _answers(api: Api, world: World, position: int) -> dict[str, bytes]:
    at: dict[str, Any] = {"as_of": "2025-06-30", "position": position}
    found = {
        f"report.{fmt}": api.get(
            f"/v1/coalitions/{world.coalition}/report", format=fmt, **at
        ).content
        for fmt in ("json", "csv", "md", "html")
    }
    for path in ("health", "commitments", "timeline"):
        found[path] = api.get(f"/v1/partners/{world.person}/{path}", **at).content
    found["accountability"] = api.get("/v1/accountability", **at).content
    found["agenda"] = api.get("/v1/agenda", as_of="2025-01-25").content
    found["agenda.ics"] = api.get("/v1/agenda.ics", as_of="2025-01-25").content
    return found


def _placeholders(content: bytes, world: World) -> bytes:
    """``content`` as it must read after the erasure: each personal value of the person's
    format 2 events (and the format 1 registration's name) replaced by its placeholder."""
    shown = erased_name(world.person).encode()
    for value, placeholder in (
        (f"Paid; thanks from {NAME}".encode(), b"[erased]"),
        (f"{SUMMARY}; write to {EMAIL}".encode(), b"[erased]"),
        (DESCRIPTION.encode(), b"[erased]"),
        (html.escape(DESCRIPTION).encode(), b"[erased]"),  # as the HTML report writes it
        (NAME.encode(), shown),
        (b'["migraine support group"]', b"[]"),
        (b'{"channels":[],"language":null,"accessibility":[],"gratitude":[]}', b"{}"),
    ):
        content = content.replace(value, placeholder)
    return content


def _signed_in_page(api: Api, path: str) -> bytes:
    """A page as a signed-in steward sees it (pages answer a session, not a bearer token)."""
    from fastapi.testclient import TestClient

    client = TestClient(api.app, follow_redirects=False)  # no lifespan: the app stays up
    try:
        token = api.steward["Authorization"].removeprefix("Bearer ")
        assert client.get(f"/signin?token={token}").status_code == 303
        page = client.get(path)
        assert page.status_code == 200, page.text
        return page.content
    finally:
        client.close()


def _without_charts(html: bytes) -> bytes:
    shown: bytes = re.sub(rb"<svg.*?</svg>", b"<svg/>", html, flags=re.DOTALL)
    return shown


def _erase(api: Api, partner: str, reason: str = "request") -> dict[str, Any]:
    response = api.client.post(
        f"/v1/partners/{partner}/erasure", json={"reason": reason}, headers=api.steward
    )
    assert response.status_code == 201, response.text
    recorded: dict[str, Any] = response.json()
    return recorded


def test_erasure_leaves_every_figure_hash_and_the_digest_and_shows_placeholders(
    api: Api, world: World
) -> None:
    log_before = api.log()
    position = log_before[-1]["position"]
    verified_before = api.verified()
    answers_before = _answers(api, world, position)
    assert NAME.encode() in answers_before["report.json"]

    erased = _erase(api, world.person)

    assert erased["type"] == "personal_data_erased"
    assert erased["position"] == position + 1
    log_after = api.log()
    assert [(e["position"], e["hash"], e["prev_hash"]) for e in log_after[:-1]] == [
        (e["position"], e["hash"], e["prev_hash"]) for e in log_before
    ]
    fields = log_after[-1]["data"]["fields"]
    assert {(f["version"], tuple(f["fields"])) for f in fields} == {
        (1, ("communities", "name", "preferences")),
        (2, ("summary",)),
        (3, ("description",)),
        (4, ("note",)),
    }
    assert NAME.encode() not in orjson.dumps(log_after)
    verified = api.verified()
    assert verified["ok"], verified["problems"]
    assert verified["digest"] != verified_before["digest"]  # one event more
    (unchecked,) = verified["unchecked"]  # the format 1 registration
    assert unchecked["version"] == 1
    assert f"position {erased['position']}" in unchecked["problem"]
    assert "content no longer checkable" in unchecked["problem"]
    answers_after = _answers(api, world, position)
    for name, content in answers_before.items():
        if name.startswith("agenda"):
            continue  # read at a later position: compared below
        expected = _placeholders(content, world)
        if name == "report.md":  # Markdown escapes the placeholder's brackets, as any text's
            expected = expected.replace(b"[erased]", b"\\[erased\\]")
        if name == "report.html":
            # The charts lay their axes out around the names' lengths: the page is the same
            # byte for byte but for them (their numbers are the table's, compared here).
            expected, shown = _without_charts(expected), _without_charts(answers_after[name])
            assert shown == expected, name
            continue
        assert answers_after[name] == expected, name
    for name in ("agenda", "agenda.ics"):
        assert not any(secret in answers_after[name] for secret in SECRETS), name
    assert erased_name(world.person).encode() in answers_after["agenda"]
    partners = api.read("/v1/partners", q="ximena")
    assert partners["partners"] == []
    assert not any(
        secret in _signed_in_page(api, f"/partners/{world.person}") for secret in SECRETS
    )
    assert erased_name(world.person).encode() in _signed_in_page(api, f"/partners/{world.person}")


def test_an_amount_edited_in_an_erased_event_is_detected(
    api: Api, world: World, settings: Settings
) -> None:
    _erase(api, world.person)

    def change(state: dict[str, Any]) -> None:
        state["data"]["amount"] = "2500.00"

    edit_state(settings, world.commitment["position"], change)

    verified = api.verified()
    assert not verified["ok"]
    assert [(p["position"], p["problem"]) for p in verified["problems"]] == [
        (world.commitment["position"], "stored content no longer matches its hash")
    ]


def test_a_rebuild_after_erasure_gives_the_same_views(api: Api, world: World) -> None:
    _erase(api, world.person)
    services = api.app.state.services
    position = services.ledger.last_position()
    answers = _answers(api, world, position)

    services.keeper.rebuild()

    assert _answers(api, world, position) == answers


def test_subject_access_gives_everything_held_then_nothing_once_erased(
    api: Api, world: World
) -> None:
    held = api.read(f"/v1/partners/{world.person}/personal-data")
    assert held["subject"] == world.person
    assert held["events"][0]["personal"]["name"] == NAME
    assert held["events"][1]["personal"]["summary"] == f"{SUMMARY}; write to {EMAIL}"

    _erase(api, world.person)

    after = api.read(f"/v1/partners/{world.person}/personal-data")
    assert after["erased"]
    assert not any(secret in orjson.dumps(after) for secret in SECRETS)


def test_erasure_refuses_a_free_text_reason_and_an_unknown_partner(api: Api, world: World) -> None:
    refused = api.client.post(
        f"/v1/partners/{world.person}/erasure", json={"reason": NAME}, headers=api.steward
    )
    api.assert_problem(refused, 422, "reason")
    unknown = api.client.post(
        "/v1/partners/00000000-0000-4000-8000-000000000000/erasure",
        json={"reason": "request"},
        headers=api.steward,
    )
    api.assert_problem(unknown, 404)
    assert api.read(f"/v1/partners/{world.person}")["name"] == NAME


# ---- no trace in the stores' files ------------------------------------------------------------


def _sqlite_files(settings: Settings) -> Iterator[tuple[str, bytes]]:
    for path in sorted(Path(settings.db_path).parent.iterdir()):
        if path.is_file():
            yield path.name, path.read_bytes()


def _postgres_files(settings: Settings) -> Iterator[tuple[str, bytes]]:
    """Every relation file of the database as the server has it on disk (after a CHECKPOINT
    wrote out its buffers), read by the server itself (pg_read_binary_file, a superuser's)."""
    import psycopg

    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute("CHECKPOINT")
        rows = connection.execute(
            "SELECT c.oid::regclass::text, pg_relation_filepath(c.oid), "
            "pg_relation_size(c.oid) FROM pg_class c WHERE pg_relation_filepath(c.oid) IS NOT "
            "NULL AND c.relkind IN ('r', 't', 'i', 'm') AND pg_relation_size(c.oid) > 0"
        ).fetchall()
        for name, path, size in rows:
            (content,) = connection.execute(
                "SELECT pg_read_binary_file(%s, 0, %s, true)", (path, size)
            ).fetchone() or (None,)
            yield name, bytes(content or b"")


def _traces(settings: Settings) -> list[tuple[str, bytes]]:
    files = _postgres_files(settings) if settings.database_url else _sqlite_files(settings)
    return [(name, secret) for name, content in files for secret in SECRETS if secret in content]


def test_no_file_of_the_store_holds_the_erased_name_email_or_summary(
    api: Api, world: World, settings: Settings
) -> None:
    api.read("/v1/partners/" + world.person)  # the views hold the name too
    before = _traces(settings)
    # The search finds what the views show in plain (names, commitment descriptions); a
    # summary of a format 2 event is nowhere in plain, only encrypted in the personal table.
    assert {secret for _, secret in before} == {NAME.encode(), DESCRIPTION.encode()}

    _erase(api, world.person)

    found = _traces(settings)
    assert found == [], [(n, s[:10]) for n, s in found]


def test_retention_lists_first_then_erases_the_relationships_that_ended(
    api: Api, world: World, settings: Settings
) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    api.append(world.person, "stage_changed", "2025-02-01T10:00:00Z", stage="ended")
    api.append(world.other, "stage_changed", "2025-05-01T10:00:00Z", stage="ended")
    runner = CliRunner()
    # --db means that SQLite file; without it, the PostgreSQL URL from the environment.
    env = {"PLEDGER_DATABASE_URL": settings.database_url or "", "PLEDGER_DB": str(settings.db_path)}
    args = ["erase", "--stage", "ended", "--before", "2025-03-01"]

    listed = runner.invoke(app, [*args, "--dry-run"], env=env)

    assert listed.exit_code == 0, listed.output
    assert f"would erase {world.person}  {NAME}" in listed.output
    assert world.other not in listed.output
    assert api.read(f"/v1/partners/{world.person}")["name"] == NAME

    erased = runner.invoke(app, args, env=env)

    assert erased.exit_code == 0, erased.output
    assert api.read(f"/v1/partners/{world.person}")["name"] == erased_name(world.person)
    assert api.read(f"/v1/partners/{world.other}")["name"] == "Eastside Tenants Union"
    again = runner.invoke(app, [*args, "--dry-run"], env=env)
    assert "no partner's relationship ended before 2025-03-01" in again.output


# ---- the README's verifier, run as a stranger would -----------------------------------------


def _readme_verifier() -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    after = readme.split("A verifier hashes as before", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


# A verifier a fresh helper wrote from the README's words alone (the sample code left out),
# to show the documentation is enough.
FROM_THE_DOCS = Path(__file__).parent / "data" / "export_verifier_from_docs.py"


def _run_verifier(
    tmp_path: Path, events: list[dict[str, Any]], source: str | None = None
) -> subprocess.CompletedProcess[str]:
    script, export = tmp_path / "verify.py", tmp_path / "ledger.jsonl"
    script.write_text(source or _readme_verifier(), encoding="utf-8")
    export.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return subprocess.run(
        [sys.executable, str(script), str(export)], capture_output=True, text=True, check=False
    )


def test_the_readme_verifier_passes_a_ledger_of_both_formats_erased_and_not(
    api: Api, world: World, settings: Settings, tmp_path: Path
) -> None:
    api.append(world.other, "contact_made", "2025-01-11T10:00:00Z", channel="phone",
               direction="outbound", summary="Kept, not erased")  # fmt: skip
    _erase(api, world.person)
    events = api.log()
    formats = {("personal" in e["data"], bool(e.get("disclosed"))) for e in events}
    assert {(True, True), (True, False), (False, False)} <= formats  # held, erased, format 1

    checked = _run_verifier(tmp_path, events)

    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == api.verified()["digest"]

    def change(state: dict[str, Any]) -> None:
        state["data"]["amount"] = "2500.00"

    edit_state(settings, world.commitment["position"], change)
    forged = _run_verifier(tmp_path, api.log())
    assert forged.returncode != 0
    assert "AssertionError" in forged.stderr


def test_a_verifier_written_from_the_docs_alone_agrees(
    api: Api, world: World, settings: Settings, tmp_path: Path
) -> None:
    api.append(world.other, "contact_made", "2025-01-11T10:00:00Z", channel="phone",
               direction="outbound", summary="Kept, not erased")  # fmt: skip
    _erase(api, world.person)
    source = FROM_THE_DOCS.read_text(encoding="utf-8")

    checked = _run_verifier(tmp_path, api.log(), source)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip().splitlines()[-1] == api.verified()["digest"]

    def change(state: dict[str, Any]) -> None:
        state["data"]["amount"] = "2500.00"

    edit_state(settings, world.commitment["position"], change)
    forged = _run_verifier(tmp_path, api.log(), source)
    assert forged.returncode == 1
    assert "content does not hash to its hash" in forged.stderr


# ---- the web page -----------------------------------------------------------------------------


def test_the_page_erases_only_once_the_name_is_typed(api: Api, world: World) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(api.app, follow_redirects=False)
    token = api.steward["Authorization"].removeprefix("Bearer ")
    client.get(f"/signin?token={token}")
    download = client.get(f"/partners/{world.person}/personal-data.json")
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    assert download.json()["events"][0]["personal"]["name"] == NAME
    form = client.get(f"/partners/{world.person}/erase")
    assert form.status_code == 200
    csrf = re.search(r'name="csrftoken" value="([^"]+)"', form.text)
    assert csrf is not None
    page = f"/partners/{world.person}/erase"

    wrong = client.post(page, data={"csrftoken": csrf[1], "reason": "request",
                                    "confirmation": "Ximena"})  # fmt: skip

    assert wrong.status_code == 422
    assert "type the partner&#39;s name" in wrong.text
    assert api.read(f"/v1/partners/{world.person}")["name"] == NAME

    done = client.post(page, data={"csrftoken": csrf[1], "reason": "request",
                                   "confirmation": NAME.lower()})  # fmt: skip

    assert done.status_code == 303
    assert api.read(f"/v1/partners/{world.person}")["name"] == erased_name(world.person)
    assert api.log()[-1]["data"]["reason"] == "request"
    client.close()


def test_an_altered_personal_row_reads_as_not_held_and_verify_names_it(
    api: Api, world: World, settings: Settings
) -> None:
    contact = next(e for e in api.log() if e["type"] == "contact_made")
    statement = (
        "UPDATE {table} SET sealed = {flip} WHERE originator_id = {mark} "
        "AND originator_version = {mark}"
    )
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url, autocommit=True) as pg:
            pg.execute(
                statement.format(
                    table="pledger_personal_data",
                    flip="overlay(sealed placing '\\x00'::bytea from 1 for 1)",
                    mark="%s",
                ),
                (contact["stream_id"], contact["version"]),
            )
    else:
        lite = sqlite3.connect(settings.db_path)
        with lite:
            lite.execute(
                statement.format(
                    table="personal_data",
                    flip="CAST(zeroblob(1) || substr(sealed, 2) AS BLOB)",
                    mark="?",
                ),
                (contact["stream_id"], contact["version"]),
            )
        lite.close()

    timeline = api.read(f"/v1/partners/{world.person}/timeline")
    shown = next(e for e in timeline["events"] if e["version"] == contact["version"])
    assert shown["data"]["summary"] == "[erased]"
    verified = api.verified()
    assert [(p["position"], p["problem"][:40]) for p in verified["problems"]] == [
        (contact["position"], "personal values missing or unreadable, a")
    ]


def test_no_answer_kept_from_before_an_erasure_shows_the_erased_name(api: Api) -> None:
    """The read side keeps decoded snapshots, healths and sorted lists per position; none of
    them may answer with an erased name afterwards, even asked again at a position from
    before the erasure (where the partner is still on record, as a placeholder)."""
    name = "Wilhelmina Okonkwo-Sørensen"
    person = api.register(name, kind="individual")
    other = api.register("Riverbend Food Bank")
    api.append(person, "contact_made", "2025-02-01T10:00:00Z", channel="phone",
               direction="inbound")  # fmt: skip
    before = api.log()[-1]["position"]
    asks = [
        ("/v1/partners", {"sort": sort, "position": before, "as_of": as_of})
        for sort in ("health", "name", "last_touch")
        for as_of in (None, "2025-03-01")
    ] + [
        (f"/v1/partners/{person}", {"position": before}),
        (f"/v1/partners/{person}/health", {"position": before}),
        (f"/v1/partners/{other}/timeline", {"position": before}),
    ]

    def shown() -> list[str]:
        return [
            api.get(path, **{k: v for k, v in params.items() if v is not None}).text
            for path, params in asks
        ]

    assert all(name in text for text in shown()[:6])  # kept by the read side's caches now
    _erase(api, person)

    for text in shown():
        assert name not in text
