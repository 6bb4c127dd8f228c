"""Configuration, read from the environment (and CLI flags) in this one place.

| variable             | default      | meaning                                              |
| -------------------- | ------------ | ---------------------------------------------------- |
| PLEDGER_DB           | ./pledger.db | the SQLite event log; read models sit beside it      |
| PLEDGER_DATABASE_URL | (unset)      | postgresql://user:pass@host:port/db: use PostgreSQL  |
| PLEDGER_HOST         | 127.0.0.1    | address `pledger serve` listens on                   |
| PLEDGER_PORT         | 8000         | port `pledger serve` listens on                      |
| PLEDGER_LOCALE       | en_US        | how pages show money to people (CLDR, through Babel) |
| PLEDGER_TIMEZONE     | UTC          | the ledger's time zone (IANA name): it decides every |
|                      |              | calendar day (the end of an as_of date, on time or   |
|                      |              | late, days overdue, periods, agenda days); instants  |
|                      |              | are stored and hashed in UTC whatever it is          |
| PLEDGER_LOCK_TIMEOUT | 5            | PostgreSQL: seconds a write waits for the log's lock |
|                      |              | (held by another save, e.g. an import) before it is  |
|                      |              | refused with 503 and Retry-After                     |
| PLEDGER_SIGNING_KEY_FILE | (see below) | the Ed25519 key that signs checkpoints and reports |

The signing key (issue 15) is kept outside the database, so that whoever can rewrite the
database cannot sign for it: on SQLite beside the log (``pledger.db`` -> ``pledger.ed25519``);
on PostgreSQL, where there is no file beside the database, in the user's data folder
(``$XDG_DATA_HOME`` or ``~/.local/share``) under ``pledger/<database>@<host>_<port>.ed25519``.
Every process that signs for one ledger (servers, the CLI) must use the same file: on
PostgreSQL with several machines, set PLEDGER_SIGNING_KEY_FILE on each.
| PLEDGER_PROJECTION   | serve        | who keeps the views current: `serve` (each server    |
|                      |              | process), or `process` (one `pledger project`        |
|                      |              | process; PostgreSQL only, see README)                |
| PLEDGER_VERIFY_EVERY | 3600         | seconds: the server verifies the whole log in the    |
|                      |              | background at least this often (0: only on start-up, |
|                      |              | after new events and when asked); see api.verifying  |
| PLEDGER_VERIFY_AFTER_EVENTS | 10000 | and once this many events were added since the last |
|                      |              | run (0: not for new events)                          |
| PLEDGER_VERIFY_WAIT_EVENTS | 20000  | a request for a verification (none done yet, or a   |
|                      |              | steward's fresh one) waits for the run on a log of   |
|                      |              | at most this many events; on a larger one it answers |
|                      |              | 202 at once (0: never waits)                         |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from urllib.parse import unquote, urlsplit

from babel import Locale, UnknownLocaleError

from domain.dates import DEFAULT_ZONE, ledger_zone

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    db_path: Path
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    locale: str = "en_US"
    lock_timeout: int = 5
    signing_key_file: Path | None = None
    time_zone: str = DEFAULT_ZONE

    def __post_init__(self) -> None:
        ledger_zone(self.time_zone)  # a name the time zone database lacks stops here

    projection: str = "serve"
    verify_every_seconds: int = 3600
    verify_after_events: int = 10_000
    verify_wait_events: int = 20_000

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, db: str | None = None
    ) -> Settings:
        env = os.environ if environ is None else environ
        url = env.get("PLEDGER_DATABASE_URL") or None
        if db is not None:
            url = None  # an explicit --db always means that SQLite file
        return cls(
            db_path=Path(db or env.get("PLEDGER_DB") or "pledger.db").expanduser().resolve(),
            database_url=url,
            host=env.get("PLEDGER_HOST", "127.0.0.1"),
            port=int(env.get("PLEDGER_PORT", "8000")),
            locale=_locale(env.get("PLEDGER_LOCALE") or "en_US"),
            lock_timeout=int(env.get("PLEDGER_LOCK_TIMEOUT", "5")),
            signing_key_file=_path(env.get("PLEDGER_SIGNING_KEY_FILE")),
            time_zone=env.get("PLEDGER_TIMEZONE") or DEFAULT_ZONE,
            projection=_projection(env.get("PLEDGER_PROJECTION") or "serve"),
            verify_every_seconds=_count(env, "PLEDGER_VERIFY_EVERY", 3600),
            verify_after_events=_count(env, "PLEDGER_VERIFY_AFTER_EVENTS", 10_000),
            verify_wait_events=_count(env, "PLEDGER_VERIFY_WAIT_EVENTS", 20_000),
        )

    @property
    def zone(self) -> tzinfo:
        """The ledger's time zone (SPEC §3, "Calendar days")."""
        return ledger_zone(self.time_zone)

    @property
    def store(self) -> str:
        return "postgres" if self.database_url else "sqlite"

    @property
    def serve_keeps_views(self) -> bool:
        """Whether each server process keeps the views current itself (the default), rather
        than leaving them to one ``pledger project`` process (``PLEDGER_PROJECTION=process``,
        or ``pledger serve --no-projection``; PostgreSQL only)."""
        return self.projection == "serve"

    @property
    def views_path(self) -> Path:
        """The SQLite file holding read models, beside the event log."""
        return self.db_path.with_name(self.db_path.stem + ".views" + self.db_path.suffix)

    @property
    def signing_key_path(self) -> Path:
        """Where the ledger's Ed25519 signing key is (made there on first use): see the
        module's docstring."""
        if self.signing_key_file is not None:
            return self.signing_key_file
        if not self.database_url:
            return self.db_path.with_suffix(".ed25519")
        parts = urlsplit(self.database_url)
        data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        name = (
            f"{unquote(parts.path.lstrip('/')) or 'postgres'}@{parts.hostname}_{parts.port or 5432}"
        )
        return data / "pledger" / f"{name}.ed25519"

    def describe(self) -> str:
        if self.database_url:
            parts = urlsplit(self.database_url)
            return f"PostgreSQL database {parts.path.lstrip('/')} on {parts.hostname}"
        return f"SQLite file {self.db_path}"

    def event_store_env(self) -> dict[str, str]:
        """The eventsourcing library's persistence settings for the event log."""
        if not self.database_url:
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.db_path),
                "SQLITE_LOCK_TIMEOUT": "30",
                "APPLICATION_RECORDER_TOPIC": "api.recorders:LedgerSQLiteRecorder",
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": "api.recorders:LedgerPostgresRecorder",
            **postgres_env(self.database_url),
            "POSTGRES_LOCK_TIMEOUT": str(self.lock_timeout),
        }

    def views_env(self) -> dict[str, str]:
        """Persistence settings for the read models: a sibling SQLite file, or the same database."""
        if not self.database_url:
            return {
                "PERSISTENCE_MODULE": "projections.sqlite_views:ViewsSQLiteFactory",
                "SQLITE_DBNAME": str(self.views_path),
                "SQLITE_LOCK_TIMEOUT": "30",
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            **postgres_env(self.database_url),
            # The library's projection runner builds an application of its own (named
            # "pledger") from these settings: it must use the ledger's recorder too, which
            # creates the schema under the schema lock (see projections.pgschema).
            "PLEDGER_APPLICATION_RECORDER_TOPIC": "api.recorders:LedgerPostgresRecorder",
        }


def _path(text: str | None) -> Path | None:
    return Path(text).expanduser().resolve() if text else None


PROJECTION_CHOICES = ("serve", "process")


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number >= 0 from ``env[name]`` (``default`` when unset); raises ValueError
    naming the variable otherwise."""
    text = env.get(name) or str(default)
    if not text.strip().isdigit():
        msg = f"{name}={text!r} must be a whole number, 0 or more"
        raise ValueError(msg)
    return int(text)


def _projection(name: str) -> str:
    """PLEDGER_PROJECTION's value, checked; raises ValueError naming the choices."""
    if name not in PROJECTION_CHOICES:
        msg = f"PLEDGER_PROJECTION={name!r} must be serve or process"
        raise ValueError(msg)
    return name


def _locale(name: str) -> str:
    """A CLDR locale Babel knows (``en_US``, ``es_MX``, ``fr_CA``); raises ValueError naming
    PLEDGER_LOCALE otherwise."""
    try:
        return str(Locale.parse(name.replace("-", "_")))
    except (ValueError, UnknownLocaleError):
        msg = f"PLEDGER_LOCALE={name!r} is not a locale such as en_US or es_MX"
        raise ValueError(msg) from None


def postgres_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        msg = f"PLEDGER_DATABASE_URL must start with postgresql://, not {parts.scheme}://"
        raise ValueError(msg)
    return {
        "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        # Each pool opens one connection at first and grows to 12 under load: a server
        # process holds several pools (the log, the views, the projection runner's own), and
        # `serve --workers 3` beside a few CLI commands must stay well within PostgreSQL's
        # default max_connections (100), where pools of 4 from the start used them all up.
        "POSTGRES_POOL_SIZE": "1",
        "POSTGRES_MAX_OVERFLOW": "11",
        # The library ends a transaction left idle for 5 s by default. A rebuild or a report
        # reads in one transaction while Python folds the rows, and on a busy machine a pause
        # in that folding passed 5 s once and failed the work; a minute still ends leaks.
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "60",
    }
