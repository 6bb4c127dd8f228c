"""Moving a ledger and backing it up (issue 17 items 4 and 5), with the real commands.

* `pledger copy --to` copies a ledger from SQLite to PostgreSQL and back: the same events at the
  same positions (the exports are identical), the same position and digest from `pledger
  verify` on both sides, the tokens, views rebuilt; a non-empty target is refused untouched; the
  copy's next event takes the next position.
* `pledger backup FILE` copies a SQLite ledger while a server writes to it: the backup verifies,
  and holds a prefix of the log. On PostgreSQL the command points to pg_dump, and a pg_dump /
  pg_restore round trip into a fresh database verifies with the same digest.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import httpx2
import pytest

from api.settings import Settings
from tests.conftest import postgres_database
from tests.e2e.test_serve import eventually, issue_token, pledger, serving

pytestmark = pytest.mark.slow

VERIFIED = re.compile(r"position:\s+(\d+)\ndigest:\s+([0-9a-f]{64})")
AS_OF = "2025-06-30"


def verified(settings: Settings) -> tuple[str, str]:
    """The position and digest `pledger verify` prints (it must pass)."""
    done = pledger(settings, "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    found = VERIFIED.search(done.stdout)
    assert found, done.stdout
    return found.group(1), found.group(2)


def exported(settings: Settings) -> list[str]:
    done = pledger(settings, "export", "events")
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def agenda(settings: Settings) -> str:
    done = pledger(settings, "agenda", "--format", "json", "--as-of", AS_OF, "--within-days", "400")
    assert done.returncode == 0, done.stderr
    return done.stdout


def copy_to(source: Settings, target: Settings) -> subprocess.CompletedProcess[str]:
    where = target.database_url or str(target.db_path)
    return pledger(source, "copy", "--to", where)


@pytest.mark.postgres
@pytest.mark.parametrize("direction", ["sqlite to postgres", "postgres to sqlite"])
def test_a_ledger_moves_between_stores_with_the_same_digest(tmp_path: Path, direction: str) -> None:
    with postgres_database() as url:
        on_sqlite = Settings(db_path=tmp_path / "ledger.db")
        on_postgres = Settings(db_path=tmp_path / "unused.db", database_url=url)
        source, target = (
            (on_sqlite, on_postgres)
            if direction == "sqlite to postgres"
            else (on_postgres, on_sqlite)
        )
        made = pledger(source, "demo", "--partners", "6", "--months", "4")
        assert made.returncode == 0, made.stderr
        issue_token(source, "--role", "viewer", "--name", "moved-viewer")

        copied = copy_to(source, target)
        assert copied.returncode == 0, copied.stdout + copied.stderr
        sides = re.findall(r"^(source|copy):\s+(\d+)\s+([0-9a-f]{64})", copied.stdout, re.M)
        assert [side for side, *_ in sides] == ["source", "copy"]
        assert sides[0][1:] == sides[1][1:]

        assert verified(target) == verified(source) == sides[0][1:]
        assert exported(target) == exported(source)  # positions, streams, versions, hashes
        assert agenda(target) == agenda(source)  # the views were rebuilt
        tokens = pledger(target, "token", "list")
        assert "moved-viewer" in tokens.stdout

        before = exported(target)
        again = copy_to(source, target)
        assert again.returncode == 1
        assert "not empty" in again.stderr
        assert exported(target) == before

        # The copy goes on from where the source stood.
        roster = tmp_path / "new.csv"
        roster.write_text("name,kind\nAfter the move,organization\n", encoding="utf-8")
        assert pledger(target, "import", "partners", str(roster)).returncode == 0
        last = int(sides[0][1])
        assert f'"position":{last + 1},' in exported(target)[-1]


def test_a_backup_taken_while_a_server_writes_verifies(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "ledger.db")
    assert pledger(settings, "demo", "--partners", "6", "--months", "4").returncode == 0
    backup = tmp_path / "backup.db"
    with serving(settings, "backup") as server:
        token = issue_token(settings, "--role", "steward", "--name", "backup")
        writing = threading.Event()
        writing.set()
        written: list[int] = []

        def write() -> None:
            with httpx2.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {token}"}
            ) as http:
                while writing.is_set():
                    response = http.post(
                        "/v1/partners",
                        json={"name": f"Written {len(written)}", "kind": "organization"},
                    )
                    assert response.status_code == 201, response.text
                    written.append(response.json()["position"])

        writer = threading.Thread(target=write)
        writer.start()
        try:
            assert eventually(lambda: len(written) >= 3, 30.0)
            before = len(written)
            done = pledger(settings, "backup", str(backup))
            during = len(written) - before
        finally:
            writing.clear()
            writer.join()
        assert done.returncode == 0, done.stderr
        assert during > 0, "the server wrote while the backup was taken"

    copy = Settings(db_path=backup)
    position, _ = verified(copy)
    source_events = exported(settings)
    assert exported(copy) == source_events[: int(position)]  # a consistent prefix of the log
    assert "backup" in pledger(copy, "token", "list").stdout  # tokens are in the backup

    refused = pledger(settings, "backup", str(backup))
    assert refused.returncode == 1
    assert "already exists" in refused.stderr


@pytest.mark.postgres
def test_postgres_is_backed_up_with_pg_dump_and_restores(tmp_path: Path) -> None:
    pg_dump, pg_restore = shutil.which("pg_dump"), shutil.which("pg_restore")
    if pg_dump is None or pg_restore is None:
        pytest.skip("pg_dump and pg_restore are not installed here")
    with postgres_database() as url, postgres_database() as restored_url:
        settings = Settings(db_path=tmp_path / "unused.db", database_url=url)
        assert pledger(settings, "demo", "--partners", "6", "--months", "4").returncode == 0
        refused = pledger(settings, "backup", str(tmp_path / "x.db"))
        assert refused.returncode == 2
        assert "pg_dump" in refused.stderr

        dump = tmp_path / "ledger.dump"
        # As the README says: without the partners' snapshots (names in clear; retaken).
        subprocess.run(
            [
                pg_dump,
                "--format=custom",
                "--exclude-table-data=*.pledger_snapshots",
                f"--file={dump}",
                url,
            ],
            check=True,
        )
        subprocess.run([pg_restore, f"--dbname={restored_url}", str(dump)], check=True)
        restored = Settings(db_path=tmp_path / "unused.db", database_url=restored_url)
        assert verified(restored) == verified(settings)
        assert exported(restored) == exported(settings)
