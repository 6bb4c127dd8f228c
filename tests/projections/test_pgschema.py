"""Creating the PostgreSQL schema once, whoever starts first (issue 11, fault 3)."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from api.settings import Settings
from api.wiring import open_ledger, open_services
from projections.pgschema import SchemaOnce, created_object
from projections.runner import open_view

HANG_GUARD_SECONDS = 30.0  # only turns a hang into a failure


@pytest.fixture
def settings(postgres_url: str, tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "pledger.db", database_url=postgres_url)


def test_every_statement_of_the_schema_names_what_it_creates(settings: Settings) -> None:
    ledger = open_ledger(settings)
    view = open_view(settings.views_env())
    try:
        statements = [
            s.as_string()
            for s in [*ledger.recorder.sql_create_statements, *view.sql_create_statements]  # type: ignore[attr-defined]
        ]
    finally:
        ledger.close()
        view.datastore.close()
    kinds = {created_object(statement)[0] for statement in statements}
    assert kinds == {"relation", "type", "function"}


@pytest.mark.parametrize(
    "statement",
    ["DROP TABLE x", "CREATE TABLE x (a int)", "ALTER TABLE x ADD COLUMN b int"],
)
def test_a_statement_the_check_does_not_know_is_an_error(statement: str) -> None:
    with pytest.raises(ValueError, match="CREATE statement"):
        created_object(statement)


def test_processes_starting_at_once_on_a_fresh_database_all_start(settings: Settings) -> None:
    """Eight starts at once (each with pools of its own, as processes have): all succeed."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        try:
            barrier.wait()
            services = open_services(settings)
            services.close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_GUARD_SECONDS)
    assert errors == []


@pytest.fixture
def existing(settings: Settings) -> Settings:
    """Settings on a database whose schema a first start created."""
    open_services(settings).close()
    return settings


def test_a_start_on_an_existing_schema_does_not_wait_for_the_logs_lock(existing: Settings) -> None:
    """A long save (an import) holds the log's table lock; a server starting meanwhile finds its
    schema there and creates nothing, so it does not queue behind that lock."""
    assert existing.database_url is not None
    started = threading.Event()
    errors: list[BaseException] = []

    def start() -> None:
        try:
            open_services(existing).close()
            started.set()
        except BaseException as error:
            errors.append(error)

    with psycopg.connect(existing.database_url) as holder:
        holder.execute("LOCK TABLE pledger_events IN EXCLUSIVE MODE")
        thread = threading.Thread(target=start, daemon=True)
        thread.start()
        finished = started.wait(HANG_GUARD_SECONDS)
        holder.rollback()
    thread.join(HANG_GUARD_SECONDS)
    assert errors == []
    assert finished, "the start waited for the log's lock"


def test_every_recorder_a_server_builds_creates_the_schema_under_the_lock(
    settings: Settings,
) -> None:
    """The server's ledger, its views, and the application and views that the library's
    projection runner builds for itself from the views' settings."""
    services = open_services(settings)
    try:
        services.keeper.start()
        runner = services.keeper._runner
        assert runner is not None
        recorders = [services.ledger.recorder, services.view, runner.app.recorder, runner.view]
    finally:
        services.close()
    assert all(isinstance(recorder, SchemaOnce) for recorder in recorders), recorders
