"""Fixtures for the HTTP API: a running app on a fresh ledger, and tokens for every role.

``api`` is a new, empty ledger for each test, once on SQLite and once on PostgreSQL (through
the shared ``settings`` fixture); ``shared_api`` is one ledger per test module and store, for
questions about one partner or coalition and for refused commands. The app runs exactly as
``pledger serve`` runs it, views kept current in the background, so a read after a write checks
read-your-writes for real. Any 5xx answer fails the test that caused it.

A module uses either ``api`` or ``shared_api``, not both: on PostgreSQL each running app holds
its connection pools open, and two at once come close to a default server's 100 connections.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import Response

from api.app import create_app
from api.auth import Role
from api.settings import Settings

PROBLEM_JSON = "application/problem+json"
POSTGRES_ADMIN_URL = os.environ.get(
    "PLEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass
class Api:
    """A running app with a steward and a viewer token, and shorthands for the usual calls."""

    client: TestClient
    app: FastAPI
    steward: dict[str, str]
    viewer: dict[str, str]

    @staticmethod
    def assert_problem(response: Response, status: int, *fragments: str) -> dict[str, Any]:
        """An RFC 9457 problem with this status, whose human ``detail`` mentions each fragment."""
        where = f"{response.request.method} {response.request.url}"
        assert response.status_code == status, f"{where}: {response.text}"
        assert response.headers["content-type"] == PROBLEM_JSON, where
        body: dict[str, Any] = response.json()
        assert body["status"] == status
        assert isinstance(body["title"], str)
        assert body["title"]
        assert isinstance(body["detail"], str)
        assert len(body["detail"]) > 5, where
        for fragment in fragments:
            assert fragment in body["detail"], f"{where}: {body['detail']}"
        return body

    def token(self, role: Role, name: str, coalition_id: str | None = None) -> dict[str, str]:
        """Headers carrying a new token of ``role``, issued the way `pledger token create` does."""
        token = self.app.state.services.tokens.issue(role, name, coalition_id)
        return {"Authorization": f"Bearer {token}"}

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Response:
        return self.client.get(
            path, params=params, headers=self.steward if headers is None else headers
        )

    def read(self, path: str, **params: Any) -> Any:
        """GET as the steward, insisting on 200."""
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def verified(self) -> Any:
        """A fresh verification of the whole log (POST /v1/audit/verify as the steward, which
        waits for the run on a small log), insisting on 200; its result."""
        response = self.client.post("/v1/audit/verify", headers=self.steward)
        assert response.status_code == 200, response.text
        return response.json()

    def register(
        self, name: str, occurred_at: str | None = "2025-01-06T10:00:00Z", **fields: Any
    ) -> str:
        body = {"name": name, "kind": "organization", "occurred_at": occurred_at, **fields}
        response = self.client.post("/v1/partners", json=body, headers=self.steward)
        assert response.status_code == 201, response.text
        partner_id: str = response.json()["id"]
        return partner_id

    def append(
        self, partner_id: str, type_: str, occurred_at: str, **fields: Any
    ) -> dict[str, Any]:
        """Record one event as the steward, insisting on 201; returns the response body."""
        body = {"type": type_, "occurred_at": occurred_at, **fields}
        response = self.client.post(
            f"/v1/partners/{partner_id}/events", json=body, headers=self.steward
        )
        assert response.status_code == 201, response.text
        recorded: dict[str, Any] = response.json()
        return recorded

    def form_coalition(self, name: str, occurred_at: str = "2025-01-02T09:00:00Z") -> str:
        body = {"name": name, "shared_vision": f"{name} vision", "occurred_at": occurred_at}
        response = self.client.post("/v1/coalitions", json=body, headers=self.steward)
        assert response.status_code == 201, response.text
        coalition_id: str = response.json()["id"]
        return coalition_id

    def join(
        self, coalition_id: str, partner_id: str, occurred_at: str = "2025-01-07T09:00:00Z"
    ) -> None:
        response = self.client.post(
            f"/v1/coalitions/{coalition_id}/members",
            json={"partner_id": partner_id, "occurred_at": occurred_at},
            headers=self.steward,
        )
        assert response.status_code == 201, response.text

    def log(self) -> list[dict[str, Any]]:
        """The whole global log, every page of it."""
        events: list[dict[str, Any]] = []
        after: int | None = 0
        while after is not None:
            page = self.read("/v1/events", after=after, limit=1000)
            events.extend(page["events"])
            after = page["next_after"]
        return events

    def event_count(self) -> int:
        return len(self.log())


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    """The app on a fresh ledger (SQLite, then PostgreSQL), with steward and viewer tokens."""
    yield from _running(settings)


def _no_server_errors(response: Response) -> None:
    # No request in these tests may end in a 5xx: every refusal is a 4xx problem.
    assert response.status_code < 500, f"{response.request.url} -> {response.status_code}"


def _running(settings: Settings) -> Iterator[Api]:
    app = create_app(settings)
    # raise_server_exceptions: an unhandled error fails the test with its traceback.
    with TestClient(app, raise_server_exceptions=True) as client:
        client.event_hooks = {"request": [], "response": [_no_server_errors]}
        services = app.state.services
        steward = {"Authorization": f"Bearer {services.tokens.issue('steward', 'steward:ana')}"}
        viewer = {"Authorization": f"Bearer {services.tokens.issue('viewer', 'viewer:bo')}"}
        yield Api(client, app, steward, viewer)


@pytest.fixture(scope="module", params=STORES)
def module_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Like ``settings``, but one ledger per test module and store, for tests that only read
    it or whose commands are refused (and so record nothing)."""
    db_path = tmp_path_factory.mktemp("ledger") / "pledger.db"
    if request.param == "sqlite":
        yield Settings(db_path=db_path)
        return
    import psycopg

    name = f"pledger_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        if os.environ.get("PLEDGER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (PLEDGER_REQUIRE_POSTGRES=1) but {error}")
        pytest.skip(f"no PostgreSQL reachable: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Settings(
            db_path=db_path, database_url=f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
        )
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def shared_api(module_settings: Settings) -> Iterator[Api]:
    """The app on a ledger shared by one test module (per store): for questions about one
    partner or coalition, each test registering its own, and for commands that are refused."""
    yield from _running(module_settings)
