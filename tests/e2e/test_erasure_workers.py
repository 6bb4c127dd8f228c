"""Erasure while two API worker processes serve one PostgreSQL ledger (issue 16): whichever
worker answers afterwards, nothing it shows still holds the erased person's data — neither its
cached stream entries nor its views' snapshots."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from api.settings import Settings
from domain.personal import erased_name
from tests.conftest import POSTGRES_ADMIN_URL
from tests.e2e.test_postgres_processes import _drop_database, _new_database
from tests.e2e.test_serve import Api, issue_token, serving

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NAME = "Wilhelmina Okonkwo-Brandt"
SUMMARY = "Asked for large-print agendas for her eyesight"
READS = 24  # new connections, so that both workers answer some of them


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Settings]:
    name = _new_database()
    try:
        yield Settings(
            db_path=tmp_path / "pledger.db",
            database_url=f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}",
        )
    finally:
        _drop_database(name)


def _reads(url: str, token: str, paths: list[str]) -> list[bytes]:
    """Each path read READS times, each time on a new connection."""
    found = []
    for _ in range(READS):
        for path in paths:
            with httpx2.Client(base_url=url, timeout=30.0) as client:
                response = client.get(path, headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 200, (path, response.text)
                found.append(response.content)
    return found


def test_no_worker_shows_the_erased_data_afterwards(database: Settings) -> None:
    with serving(database, "erasure-workers", "--workers", "2") as server:
        token = issue_token(database, "--role", "steward", "--name", "e2e-erasure")
        api = Api(server.url, token)
        person = api.post("/v1/partners", {"name": NAME, "kind": "individual"})["id"]
        api.record(person, "contact_made", "2025-01-08T10:00:00Z", channel="phone",
                   direction="inbound", summary=SUMMARY)  # fmt: skip
        paths = [f"/v1/partners/{person}", f"/v1/partners/{person}/timeline", "/v1/partners"]
        before = _reads(server.url, token, paths)
        assert all(NAME.encode() in content for content in before[:2])  # both workers warm

        erased = api.post(f"/v1/partners/{person}/erasure", {"reason": "request"})

        after = _reads(server.url, token, paths)
        api.close()
        server.stop_cleanly()
    assert erased["type"] == "personal_data_erased"
    for content in after:
        assert NAME.encode() not in content
        assert SUMMARY.encode() not in content
    assert any(erased_name(person).encode() in content for content in after)
    assert not re.search(r'HTTP/1\.1" 5\d\d', server.stderr()), server.stderr()


def test_no_worker_shows_an_erased_contact_person_afterwards(database: Settings) -> None:
    rosa = {"name": "Rosa Delgado", "role": "Treasurer"}
    contacts = {"people": [{"name": NAME, "role": "Organizer"}, rosa]}
    with serving(database, "erasure-workers", "--workers", "2") as server:
        token = issue_token(database, "--role", "steward", "--name", "e2e-erasure")
        api = Api(server.url, token)
        org = api.post("/v1/partners", {"name": "Harbor Food", "kind": "organization",
                                        "contacts": contacts})["id"]  # fmt: skip
        paths = [f"/v1/partners/{org}", f"/v1/partners/{org}/timeline"]
        before = _reads(server.url, token, paths)
        assert all(NAME.encode() in content for content in before)  # both workers warm

        api.post(f"/v1/partners/{org}/erasure", {"reason": "request", "contact": NAME})

        after = _reads(server.url, token, paths)
        api.close()
        server.stop_cleanly()
    for content in after:
        assert NAME.encode() not in content
        assert b"Erased contact person" in content
        assert b"Rosa Delgado" in content
        assert b"Harbor Food" in content
    assert not re.search(r'HTTP/1\.1" 5\d\d', server.stderr()), server.stderr()
