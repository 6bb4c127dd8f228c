"""Shared fixtures: a ledger on a fresh SQLite file, or on a fresh PostgreSQL database.

PostgreSQL tests skip when no server answers (a laptop without one), but fail instead when
PLEDGER_REQUIRE_POSTGRES=1, as .ci/run sets, so CI always tests both stores.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from api.settings import Settings
from api.wiring import open_ledger
from domain.application import Partnerships

POSTGRES_ADMIN_URL = os.environ.get(
    "PLEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("PLEDGER_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (PLEDGER_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(f"no PostgreSQL reachable: {reason}")


@contextmanager
def postgres_database(prefix: str = "pledger_test") -> Iterator[str]:
    """A new, empty PostgreSQL database of its own (URL), dropped afterwards; skips (or fails,
    with PLEDGER_REQUIRE_POSTGRES=1) when no server answers."""
    try:
        import psycopg
    except ImportError as error:  # pragma: no cover - psycopg comes with the postgres extra
        _postgres_unavailable(str(error))
        raise
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        _postgres_unavailable(str(error).strip())
        raise
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database of this test's own, dropped afterwards."""
    with postgres_database() as url:
        yield url


@pytest.fixture(autouse=True)
def _signing_keys_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the ledger's signing key goes to the user's data folder (see
    ``Settings.signing_key_path``): a temporary one for tests, inherited by the CLI they run."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(params=STORES)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for a fresh ledger, once on SQLite and once on PostgreSQL."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        return Settings(db_path=tmp_path / "pledger.db", database_url=url)
    return Settings(db_path=tmp_path / "pledger.db")


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "pledger.db")


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Partnerships]:
    app = open_ledger(settings)
    yield app
    app.close()
