"""Erasing one contact person of an organization (issue 16, Deliver 1): only their name, role,
email and phone go (shown as "Erased contact person"); the organization's name, its other
contacts, every hash, the digest and every figure stay; no file of either store holds the
erased person afterwards, while the other contact person's data is still held."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app
from api.settings import Settings
from domain.chained import ChainedAggregate
from domain.personal import ERASED_PERSON, erased_name
from tests.api.conftest import Api
from tests.api.test_erasure import _postgres_files, _run_verifier, _sqlite_files

ORG = "Harbor Street Food Collective"
ANA: dict[str, Any] = {"name": "Anaïs Quintero-Blaise", "role": "Organizer",
                       "email": "anais.qb@example.org", "phone": "+1 559 555 0177"}  # fmt: skip
ROSA: dict[str, Any] = {"name": "Rosa Delgado", "role": "Treasurer",
                        "email": "rosa.d@example.org", "phone": None}  # fmt: skip
CONTACTS = {"emails": ["office@harborfood.example.org"], "phones": [], "address": None,
            "people": [ANA, ROSA]}  # fmt: skip
ERASED: dict[str, Any] = {"name": ERASED_PERSON, "role": None, "email": None, "phone": None}


def _traces(settings: Settings, secrets: tuple[bytes, ...]) -> set[bytes]:
    files: Iterator[tuple[str, bytes]] = (
        _postgres_files(settings) if settings.database_url else _sqlite_files(settings)
    )
    return {secret for _, content in files for secret in secrets if secret in content}


def _organization(api: Api) -> str:
    partner = api.register(ORG, contacts=CONTACTS)
    moved = {**CONTACTS, "people": [ROSA, {**ANA, "role": "Coordinator"}]}
    api.append(partner, "profile_updated", "2025-02-01T10:00:00Z", contacts=moved)
    api.append(partner, "commitment_made", "2025-02-02T10:00:00Z", owed_by="us",
               description="Cold storage grant", due_on="2025-04-01", resource="financial",
               amount="1200.00", currency="USD", commitment_id="C-1")  # fmt: skip
    return partner


def _signed_in(api: Api) -> TestClient:
    client = TestClient(api.app, follow_redirects=False)
    client.get(f"/signin?token={api.steward['Authorization'].removeprefix('Bearer ')}")
    return client


def _erase(api: Api, partner: str, contact: str) -> Any:
    return api.client.post(
        f"/v1/partners/{partner}/erasure",
        json={"reason": "request", "contact": contact},
        headers=api.steward,
    )


def test_one_contact_person_is_erased_and_everything_else_stands(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    partner = _organization(api)
    log_before = api.log()
    verified_before = api.verified()
    at = {"as_of": "2025-06-30", "position": log_before[-1]["position"]}
    figures_before = [
        api.get(f"/v1/partners/{partner}/{path}", **at).content
        for path in ("health", "commitments")
    ]
    secrets = (ANA["name"].encode(), ANA["email"].encode(), ANA["phone"].encode())
    kept = (ROSA["name"].encode(), ROSA["email"].encode())

    response = _erase(api, partner, "  anaïs QUINTERO-blaise ")

    assert response.status_code == 201, response.text
    log_after = api.log()
    assert [(e["hash"], e["prev_hash"], e["data"]) for e in log_after[:-1]] == [
        (e["hash"], e["prev_hash"], e["data"]) for e in log_before
    ]
    erasure = log_after[-1]
    key = erasure["data"]["contact"]
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert [(f["version"], f["fields"]) for f in erasure["data"]["fields"]] == [
        (1, [f"contacts.people.{key}"]),
        (2, [f"contacts.people.{key}"]),
    ]
    assert not any(secret in orjson.dumps(log_after) for secret in secrets)
    assert all(f"contacts.people.{key}" not in e.get("disclosed", {}) for e in log_after)
    verified = api.verified()
    assert verified["ok"], verified["problems"]
    assert verified["unchecked"] == []
    checked = _run_verifier(tmp_path, log_after)  # the README's, checking disclosed values
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == verified["digest"]
    assert verified["digest"] != verified_before["digest"]  # one event more
    assert figures_before == [
        api.get(f"/v1/partners/{partner}/{path}", **at).content
        for path in ("health", "commitments")
    ]
    shown = api.read(f"/v1/partners/{partner}")
    assert shown["name"] == ORG
    assert shown["contacts"] == {**CONTACTS, "people": [ROSA, ERASED]}
    assert api.read(f"/v1/partners/{partner}", as_of="2025-01-10")["contacts"] == {
        **CONTACTS,
        "people": [ERASED, ROSA],
    }
    held = api.read(f"/v1/partners/{partner}/personal-data")
    assert held["events"][0]["personal"]["contacts"]["people"] == [ERASED, ROSA]
    assert held["events"][0]["personal"]["name"] == ORG
    assert not any(secret in orjson.dumps(held) for secret in secrets)
    assert _traces(settings, secrets) == set()
    assert _traces(settings, kept) == set(kept)  # the other contact person's data is held
    page = _signed_in(api).get(f"/partners/{partner}")
    content: bytes = page.content
    assert page.status_code == 200
    assert ROSA["name"].encode() in content
    assert ERASED_PERSON.encode() in content
    assert not any(secret in content for secret in secrets)

    services = api.app.state.services
    answer = api.get(f"/v1/partners/{partner}", as_of="2025-06-30").content
    services.keeper.rebuild()
    assert api.get(f"/v1/partners/{partner}", as_of="2025-06-30").content == answer

    again = _erase(api, partner, ANA["name"])
    api.assert_problem(again, 422, "contact")


def test_a_later_profile_keeps_a_person_key_and_whole_erasure_takes_every_person(
    api: Api, settings: Settings
) -> None:
    partner = _organization(api)
    keys = {
        name
        for e in api.log()
        if e["stream_id"] == partner
        for name in e["data"].get("personal", {}).get("commitments", {})
        if name.startswith("contacts.people.")
    }
    assert len(keys) == 2  # two people, each keeping their key across both events

    response = api.client.post(
        f"/v1/partners/{partner}/erasure", json={"reason": "request"}, headers=api.steward
    )

    assert response.status_code == 201, response.text
    erasure = api.log()[-1]
    assert "contact" not in erasure["data"]
    assert keys <= {name for f in erasure["data"]["fields"] for name in f["fields"]}
    assert api.read(f"/v1/partners/{partner}")["name"] == erased_name(partner)
    assert api.verified()["ok"]
    every = tuple(p[k].encode() for p in (ANA, ROSA) for k in ("name", "email"))
    assert _traces(settings, every) == set()


def test_an_unknown_contact_person_is_refused_and_nothing_is_recorded(api: Api) -> None:
    partner = _organization(api)
    count = api.event_count()

    api.assert_problem(_erase(api, partner, "Nobody Here"), 422, "contact")
    api.assert_problem(_erase(api, partner, ""), 422, "contact")

    assert api.event_count() == count
    assert api.read(f"/v1/partners/{partner}")["contacts"]["people"][1] == {
        **ANA,
        "role": "Coordinator",
    }


def test_a_person_held_before_people_had_keys_is_refused(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as older:
        older.setattr(ChainedAggregate, "SEAL_PERSONAL_DATA", False)
        partner = api.register(ORG, contacts=CONTACTS)
    api.append(partner, "profile_updated", "2025-02-01T10:00:00Z", contacts=CONTACTS)
    count = api.event_count()

    refused = _erase(api, partner, ANA["name"])

    api.assert_problem(refused, 422, "contact")
    assert "version 1" in refused.json()["detail"]
    assert api.event_count() == count


def test_the_cli_erases_one_contact_person(api: Api, settings: Settings) -> None:
    partner = _organization(api)
    runner = CliRunner()
    env = {"PLEDGER_DATABASE_URL": settings.database_url or "", "PLEDGER_DB": str(settings.db_path)}

    alone = runner.invoke(app, ["erase", "--reason", "request", "--contact", "Rosa"], env=env)
    assert alone.exit_code == 2
    unknown = runner.invoke(
        app, ["erase", partner, "--reason", "request", "--contact", "Rosa"], env=env
    )
    assert unknown.exit_code == 1
    assert "contact" in unknown.output

    done = runner.invoke(
        app, ["erase", partner, "--reason", "request", "--contact", ROSA["name"]], env=env
    )

    assert done.exit_code == 0, done.output
    assert f"erased the personal data of one contact person of {partner}" in done.output
    people = api.read(f"/v1/partners/{partner}")["contacts"]["people"]
    assert people == [ERASED, {**ANA, "role": "Coordinator"}]
    exported = runner.invoke(app, ["export", "person", partner], env=env)
    assert exported.exit_code == 0, exported.output
    held = orjson.loads(exported.stdout)
    assert held["events"][1]["personal"]["contacts"]["people"] == people
    assert ROSA["email"] not in exported.stdout


def test_the_page_erases_one_contact_person_once_their_name_is_typed(api: Api) -> None:
    partner = _organization(api)
    client = _signed_in(api)
    page = f"/partners/{partner}/erase"
    form = client.get(page)
    assert form.status_code == 200
    assert f'<option value="{ANA["name"]}">' in form.text
    csrf = re.search(r'name="csrftoken" value="([^"]+)"', form.text)
    assert csrf is not None
    count = api.event_count()
    fields = {"csrftoken": csrf[1], "reason": "request", "contact": ANA["name"]}

    wrong = client.post(page, data={**fields, "contact_confirmation": "Rosa Delgado"})
    unknown = client.post(page, data={**fields, "contact": "Nobody",
                                      "contact_confirmation": "Nobody"})  # fmt: skip

    assert wrong.status_code == 422
    assert "type the contact person&#39;s name" in wrong.text
    assert unknown.status_code == 422
    assert "choose one of the contact people listed" in unknown.text
    assert api.event_count() == count

    done = client.post(page, data={**fields, "contact_confirmation": ANA["name"].upper()})

    assert done.status_code == 303
    shown = api.read(f"/v1/partners/{partner}")
    assert shown["name"] == ORG
    assert shown["contacts"]["people"] == [ROSA, ERASED]
    assert f'<option value="{ANA["name"]}">' not in client.get(page).text
    profile = client.get(f"/partners/{partner}/record/profile_updated")
    assert ROSA["name"] in profile.text
    assert ERASED_PERSON not in profile.text  # a placeholder is no one to record again
    client.close()
