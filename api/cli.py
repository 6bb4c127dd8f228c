"""The ``pledger`` command line: parse argv, call the ledger, print, exit non-zero on refusal."""

from __future__ import annotations

import errno
import os
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, Annotated
from uuid import UUID

import orjson
import typer
from eventsourcing.persistence import MapperDeserialisationError

from api.auth import TokenBook, parse_lifetime
from api.importing import import_app, partner_names
from api.params import parse_as_of, parse_day, parse_uuid
from api.partners_file import partners_csv_lines
from api.progress import progress_bar
from api.recorders import StoredToken
from api.settings import Settings
from api.wiring import Services, cli_settings, cli_user, open_ledger, open_services
from domain.dates import DEFAULT_ZONE, ledger_zone
from domain.errors import CoalitionNotFound, LedgerError, PartnerNotFound
from domain.values import show_controls
from projections.audit import check_checkpoint, export_events
from projections.checkpoints import Checkpoint, SigningKeyError
from projections.evidence import canonical, verify_bundle
from projections.queries import At

__all__ = ["app", "main"]

app = typer.Typer(
    help="Partnership Ledger: an audit trail of promises made, kept and broken.",
    no_args_is_help=True,
    add_completion=False,
)
export_app = typer.Typer(help="Write the ledger out.", no_args_is_help=True)
app.add_typer(export_app, name="export")
token_app = typer.Typer(help="Credentials for the HTTP API.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(import_app, name="import")
audit_app = typer.Typer(help="The ledger's signing key.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLite event log to use (default: $PLEDGER_DB or ./pledger.db)."),
]


def _settings(db: str | None) -> Settings:
    return cli_settings(db)


@export_app.command("events")
def export_events_command(
    fmt: Annotated[str, typer.Option("--format", help="Only jsonl: one event a line.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Write the whole log in the /v1/events shape, one JSON object a line."""
    if fmt != "jsonl":
        typer.echo(f"error: --format must be jsonl, not {fmt!r}", err=True)
        raise typer.Exit(2)
    ledger = open_ledger(_settings(db))
    total = ledger.last_position()
    with _whole_file_or_none(output) as out:
        try:
            with progress_bar("Exporting events", total) as advance:
                for document in export_events(ledger):
                    out.write(orjson.dumps(document) + b"\n")
                    advance(1)
        except MapperDeserialisationError as error:
            # A damaged stored event: say which, instead of a traceback; verify lists them all.
            typer.echo(
                f"error: {error}; run `pledger verify` to list every damaged event", err=True
            )
            raise typer.Exit(1) from None


@export_app.command("partners")
def export_partners_command(
    fmt: Annotated[
        str, typer.Option("--format", help="Only csv: the partners file's shape.")
    ] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Write every partner as a row of the file `pledger import partners` reads (UTF-8 with
    a BOM, as spreadsheets expect), so it goes back in as it came out."""
    if fmt != "csv":
        typer.echo(f"error: --format must be csv, not {fmt!r}", err=True)
        raise typer.Exit(2)
    ledger = open_ledger(_settings(db))
    try:
        total = len(partner_names(ledger))
        with (
            _whole_file_or_none(output) as out,
            progress_bar("Exporting partners", total) as advance,
        ):
            out.write("\ufeff".encode())
            for lines in partners_csv_lines(ledger, advance):
                out.write(lines.encode())
    finally:
        ledger.close()


@export_app.command("person")
def export_person_command(
    partner: Annotated[str, typer.Argument(help="The partner's id.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Everything held about one person, readable (a subject access request, GDPR Art. 15)."""
    from api.subjects import subject_access

    services = open_services(_settings(db))
    try:
        document = subject_access(
            services.keeper.log, services.ledger, parse_uuid(partner, PartnerNotFound)
        )
    except LedgerError as error:
        raise _fail(error) from None
    _write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n", output)


@app.command("erase")
def erase_command(
    partner: Annotated[
        str | None, typer.Argument(help="The partner's id (or --stage ended --before DATE).")
    ] = None,
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="Why, as a category: request, consent_withdrawn, retention, "
            "legal_obligation or other (never free text: it could hold personal data).",
        ),
    ] = "",
    stage: Annotated[
        str | None, typer.Option("--stage", help="Retention: only 'ended' is accepted.")
    ] = None,
    before: Annotated[
        str | None,
        typer.Option("--before", help="Retention: relationships that ended before YYYY-MM-DD."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List whom retention would erase; erase none."),
    ] = False,
    contact: Annotated[
        str | None,
        typer.Option(
            "--contact",
            help="Only this contact person of the organization (their name, or person key); "
            "the partner's other data stays.",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Shred a partner's personal data for good (GDPR Art. 17): every figure, hash and the
    digest stay as they were; names and notes read as placeholders. With --contact, only one
    contact person's name, role, email and phone (shown as "Erased contact person")."""
    import asyncio

    from api.service import Ask
    from api.subjects import ended_before
    from domain.values import ErasureReason

    try:
        category = ErasureReason(reason or ("retention" if stage else ""))
    except ValueError:
        choices = ", ".join(r.value for r in ErasureReason)
        typer.echo(f"error: --reason must be one of {choices}, not {reason!r}", err=True)
        raise typer.Exit(2) from None
    if (partner is None) == (stage is None):
        typer.echo("error: name a PARTNER, or give --stage ended --before DATE", err=True)
        raise typer.Exit(2)
    if contact is not None and partner is None:
        typer.echo("error: --contact names a contact person of one PARTNER", err=True)
        raise typer.Exit(2)
    services = open_services(_settings(db))
    if partner is not None:
        try:
            chosen = [str(parse_uuid(partner, PartnerNotFound))]
            services.ledger.get_partner(UUID(chosen[0]))
        except LedgerError as error:
            raise _fail(error) from None
    else:
        if stage != "ended" or before is None:
            typer.echo("error: retention takes --stage ended and --before YYYY-MM-DD", err=True)
            raise typer.Exit(2)
        try:
            day = parse_day(before, "--before")
        except LedgerError as error:
            raise _fail(error) from None
        assert day is not None
        chosen = ended_before(
            services.keeper.log, _ended_partners(services), day, services.settings.zone
        )
        for partner_id in chosen:
            name = services.queries.partner(partner_id, _reference(services, None, None))["name"]
            typer.echo(f"{'would erase' if dry_run else 'erasing'} {partner_id}  {_terminal(name)}")
        if not chosen:
            typer.echo(f"no partner's relationship ended before {day} with personal data held")
    if dry_run:
        return
    ask = Ask(recorded_by=cli_user())
    for partner_id in chosen:
        try:
            recorded = asyncio.run(
                services.service.erase_personal_data(
                    UUID(partner_id), category, ask, contact=contact
                )
            )
        except LedgerError as error:
            raise _fail(error) from None
        whose = partner_id if contact is None else f"one contact person of {partner_id}"
        typer.echo(
            f"erased the personal data of {whose}: personal_data_erased at "
            f"position {recorded.position} (version {recorded.version})"
        )


def _ended_partners(services: Services) -> list[str]:
    at = _reference(services, None, None)
    found: list[str] = []
    cursor = None
    while True:
        page = services.queries.partners(at, stage="ended", cursor=cursor, limit=200)
        found.extend(str(item["id"]) for item in page["partners"])
        cursor = page.get("next_cursor")
        if not cursor:
            return found


@contextmanager
def _whole_file_or_none(output: Path | None) -> Iterator[IO[bytes]]:
    """Standard output, or ``output`` written whole or not at all: the bytes go to a temporary
    file beside it, which replaces it (``os.replace``, atomic on one file system) only once
    everything was written; on any failure it is removed and ``output`` is left as it was."""
    if output is None:
        try:
            yield sys.stdout.buffer
        finally:
            sys.stdout.buffer.flush()
        return
    part = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed or removed below, by hand
        dir=output.parent, prefix=f".{output.name}.", suffix=".part", delete=False
    )
    try:
        yield part
        part.close()
        os.replace(part.name, output)
    except BaseException:
        part.close()
        Path(part.name).unlink(missing_ok=True)
        raise


@app.command("verify")
def verify_command(
    checkpoint_file: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="A signed checkpoint kept outside the ledger (pledger checkpoint): fail unless "
            "the log still extends it.",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Recompute every event hash, chain link and the ledger digest; fail on any mismatch."""
    checkpoint = _read_checkpoint(checkpoint_file) if checkpoint_file is not None else None
    services = open_services(_settings(db))
    with progress_bar("Verifying events", services.ledger.last_position()) as advance:
        report = services.verify(advance=advance)
    if checkpoint is not None:
        try:
            public_key = services.checkpoints.key.public_key
        except SigningKeyError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        report.problems.extend(check_checkpoint(services.ledger, checkpoint, public_key))
    for problem in report.problems:
        event = f": stream {problem.stream_id} version {problem.version}"
        typer.echo(
            f"MISMATCH position {problem.position}{event if problem.stream_id else ''}: "
            f"{problem.problem}",
            err=True,
        )
    for unchecked in report.unchecked:
        typer.echo(
            f"UNCHECKED position {unchecked.position}: stream {unchecked.stream_id} version "
            f"{unchecked.version}: {unchecked.problem}"
        )
    typer.echo(f"events checked: {report.events_checked}")
    typer.echo(f"position:       {report.position}")
    typer.echo(f"digest:         {report.digest}")
    if not report.ok:
        typer.echo(f"FAILED: {len(report.problems)} problem(s) found.", err=True)
        raise typer.Exit(1)
    typer.echo("OK: every event matches its hash and its chain.")
    if checkpoint is not None:
        typer.echo(
            f"OK: the log extends the checkpoint at position {checkpoint.position} "
            f"({checkpoint.tree_size} events, tree head {checkpoint.tree_head})."
        )


def _read_checkpoint(path: Path) -> Checkpoint:
    """A checkpoint file as ``pledger checkpoint`` writes it; exit 2 naming what is wrong."""
    try:
        return Checkpoint.from_dict(orjson.loads(path.read_bytes()))
    except OSError as error:
        typer.echo(f"error: cannot read {path}: {error.strerror}", err=True)
    except (orjson.JSONDecodeError, ValueError) as error:
        typer.echo(f"error: {path} is not a checkpoint (pledger checkpoint): {error}", err=True)
    raise typer.Exit(2)


@app.command("checkpoint")
def checkpoint_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Sign {position, tree size, digest, tree head, time} now; keep it and print it."""
    services = open_services(_settings(db))
    services.keeper.catch_up()
    try:
        checkpoint = services.checkpoints.make()
    except SigningKeyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    key = services.checkpoints.key.public_key
    _write(canonical(checkpoint.as_dict(key)) + b"\n", output)


@audit_app.command("key")
def audit_key_command(db: DbOption = None) -> None:
    """Print the ledger's Ed25519 public key (hex), which signs checkpoints and reports."""
    services = open_services(_settings(db))
    try:
        typer.echo(services.checkpoints.key.public_key)
    except SigningKeyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@app.command("verify-bundle")
def verify_bundle_command(
    bundle: Annotated[Path, typer.Argument(help="An evidence bundle (pledger report --evidence).")],
) -> None:
    """Check an evidence bundle offline: hashes, inclusion proofs, signatures, figures."""
    try:
        raw = bundle.read_bytes()
    except OSError as error:
        typer.echo(f"error: cannot read {bundle}: {error.strerror}", err=True)
        raise typer.Exit(2) from None
    problems = verify_bundle(raw)
    for problem in problems:
        typer.echo(f"FAILED: {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    document = orjson.loads(raw)
    typer.echo(
        f"OK: {len(document['events'])} events match their hashes and their inclusion proofs "
        f"in the tree of {document['checkpoint']['tree_size']} events signed by "
        f"{document['public_key']}; the report's figures follow from them."
    )


AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Reference moment: a date (the end of that day in the ledger's time zone) or a "
        "date and time such as 2026-03-15 14:30.",
    ),
]
PositionOption = Annotated[
    int | None, typer.Option("--position", help="Count only events up to this log position.")
]


def _fail(error: LedgerError) -> typer.Exit:
    typer.echo(f"error: {error.detail}", err=True)
    return typer.Exit(1)


def _reference(
    services: Services, as_of: str | None, position: int | None, zone: tzinfo | None = None
) -> At:
    """The reference a command asks at; days counted in ``zone`` (default: the ledger's)."""
    services.keeper.catch_up()
    zone = zone or services.settings.zone
    return services.queries.at(parse_as_of(as_of, zone), position, zone=zone)


@app.command("rebuild")
def rebuild_command(db: DbOption = None) -> None:
    """Recompute every read model from event 1 (the log itself is never touched)."""
    services = open_services(_settings(db))
    with progress_bar("Rebuilding views", services.ledger.last_position()) as advance:
        started = time.perf_counter()
        processed = services.keeper.rebuild(advance=advance)
        seconds = time.perf_counter() - started
    digest, _ = services.view.digest_at(services.view.processed_position())
    # The rebuild's own time and rate (bench/run.py reads them): without start-up and imports.
    typer.echo(
        f"rebuilt views from {processed} events in {seconds:.2f} s "
        f"({processed / max(seconds, 1e-9):,.0f} events/s); digest {digest}"
    )


@app.command("copy")
def copy_command(
    to: Annotated[
        str,
        typer.Option(
            "--to", help="The new, empty ledger: postgresql://user@host/db, or a SQLite FILE.db."
        ),
    ],
    db: DbOption = None,
) -> None:
    """Copy this ledger into an empty one (SQLite to PostgreSQL or back): every event at its
    position, with its stream, version, content and hash, and the tokens; then rebuild the
    copy's views and verify both sides (the same position and digest, or exit 1)."""
    from api.moving import TargetNotEmpty, copy_ledger

    source = _settings(db)
    try:
        target = (
            Settings(db_path=source.db_path, database_url=to, locale=source.locale)
            if "://" in to
            else Settings(db_path=Path(to).expanduser().resolve(), locale=source.locale)
        )
        target.event_store_env()  # a URL that is not PostgreSQL's is refused here
    except ValueError as error:
        typer.echo(f"error: --to: {error}", err=True)
        raise typer.Exit(2) from None
    if target.describe() == source.describe():
        typer.echo("error: --to names the ledger being copied", err=True)
        raise typer.Exit(2)
    origin = open_services(source)
    try:
        copy = open_services(target)
    except Exception as error:
        typer.echo(f"error: cannot open {to}: {error}", err=True)
        raise typer.Exit(1) from None
    try:
        with progress_bar("Copying events", origin.ledger.last_position()) as advance:
            copied = copy_ledger(origin.ledger, copy.ledger, advance=advance)
        with progress_bar("Rebuilding the copy's views", copied) as advance:
            copy.keeper.rebuild(advance=advance)
        reports = []
        for side, services in (("source", origin), ("copy", copy)):
            with progress_bar(f"Verifying the {side}", copied) as advance:
                report = services.verify(advance=advance)
            where = services.settings.describe()
            typer.echo(f"{side + ':':8}{report.position}  {report.digest}  ({where})")
            reports.append(report)
    except TargetNotEmpty as error:
        typer.echo(f"error: {error}; {target.describe()} is left as it was", err=True)
        raise typer.Exit(1) from None
    finally:
        copy.close()
        origin.close()
    same = [(r.ok, r.position, r.digest) for r in reports]
    if same[0] != same[1] or not same[0][0]:
        typer.echo("FAILED: the copy does not verify to the same position and digest", err=True)
        raise typer.Exit(1)
    typer.echo(f"OK: copied {copied} events and the tokens to {target.describe()}.")


@app.command("backup")
def backup_command(
    file: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
    db: DbOption = None,
) -> None:
    """Write a consistent copy of the SQLite ledger (its log and tokens) to FILE, also while
    servers write to it (SQLite's online backup API). `pledger verify --db FILE` checks it;
    its views are rebuilt when it is first served. On PostgreSQL, use pg_dump (see README)."""
    from api.moving import backup_sqlite

    settings = _settings(db)
    if settings.store != "sqlite":
        typer.echo(
            "error: on PostgreSQL back up with pg_dump: "
            "pg_dump --format=custom --exclude-table-data='*.pledger_snapshots' "
            '--file=FILE "$PLEDGER_DATABASE_URL" '
            "(restore with pg_restore --dbname=NEW_DATABASE_URL FILE), "
            "or copy to a SQLite file with pledger copy --to FILE.db",
            err=True,
        )
        raise typer.Exit(2)
    if not settings.db_path.exists():
        typer.echo(f"error: there is no ledger at {settings.db_path}", err=True)
        raise typer.Exit(1)
    target = file.expanduser().resolve()
    pages: dict[str, int] = {"done": 0}
    try:
        with progress_bar("Backing up", None) as advance:

            def copied(done: int, _total: int) -> None:
                advance(done - pages["done"])
                pages["done"] = done

            backup_sqlite(settings.db_path, target, advance=copied)
    except (FileExistsError, OSError, sqlite3.Error) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"backed up {settings.db_path} to {target}; check it with pledger verify --db {target}"
    )


@app.command("report")
def report_command(
    coalition: Annotated[
        str | None, typer.Argument(help="The coalition's id (taken from --like when given).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="json, csv, md or html.")] = "json",
    as_of: AsOfOption = None,
    position: PositionOption = None,
    start: Annotated[str | None, typer.Option("--from", help="First day of the period.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day of the period.")] = None,
    like: Annotated[
        Path | None,
        typer.Option(
            "--like",
            help="A json report made earlier: make it again at its coalition, as_of, position, "
            "period and time zone (the same bytes in json).",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
    signature: Annotated[
        Path | None,
        typer.Option(
            "--signature",
            help="Also write the report's signature: its SHA-256, the ledger's Ed25519 "
            "signature over it, the checkpoint covering it and the public key (JSON).",
        ),
    ] = None,
    evidence: Annotated[
        Path | None,
        typer.Option(
            "--evidence",
            help="Also write the report's evidence bundle (json report, events, proofs, "
            "checkpoint, key), for pledger verify-bundle.",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """The accountability report to a coalition, reproducible to the byte."""
    from api.formats import FOR_PEOPLE, REPORT_FORMATS, render_report

    if fmt not in REPORT_FORMATS:
        typer.echo(f"error: --format must be one of {', '.join(REPORT_FORMATS)}", err=True)
        raise typer.Exit(2)
    if like is not None:
        if any(v is not None for v in (coalition, as_of, position, start, end)):
            typer.echo(
                "error: --like takes the coalition, --as-of, --position, --from and --to from "
                "the report; give none of them beside it",
                err=True,
            )
            raise typer.Exit(2)
        coalition, as_of, position, start, end, zone = _reference_of(like)
    else:
        zone = None
    if coalition is None:
        typer.echo("error: name the coalition (its id), or give --like REPORT.json", err=True)
        raise typer.Exit(2)
    services = open_services(_settings(db))
    try:
        at = _reference(services, as_of, position, zone)
        first, last = parse_day(start, "--from"), parse_day(end, "--to")
        report = services.queries.report(
            coalition, at, start=first, end=last, for_people=fmt in FOR_PEOPLE
        )
        bundle = services.report_evidence(coalition, at, first, last) if evidence else None
    except LedgerError as error:
        raise _fail(error) from None
    body = render_report(fmt, report, locale=services.settings.locale)
    try:
        headers = services.report_headers(body, int(report["position"])) if signature else {}
    except SigningKeyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    _write(body, output)
    if signature is not None:
        _write(canonical(_sidecar(headers)) + b"\n", signature)
    if evidence is not None and bundle is not None:
        _write(bundle, evidence)


def _sidecar(headers: dict[str, str]) -> dict[str, object]:
    """The report's signature file: what the API sends as Pledger-* headers, as JSON."""
    return {
        "report_sha256": headers["Pledger-Report-SHA256"],
        "report_signature": headers["Pledger-Report-Signature"],
        "checkpoint": orjson.loads(headers["Pledger-Checkpoint"]),
        "public_key": headers["Pledger-Public-Key"],
    }


def _reference_of(
    path: Path,
) -> tuple[str, str, int, str | None, str | None, tzinfo]:
    """The coalition id, as_of, position, period and time zone a json report states
    (``--like``); a report made before reports stated their zone counted UTC days."""
    try:
        stated = orjson.loads(path.read_bytes())
        return (
            str(stated["coalition"]["id"]),
            str(stated["as_of"]),
            int(stated["position"]),
            stated["period"]["from"],
            stated["period"]["to"],
            ledger_zone(str(stated.get("time_zone", DEFAULT_ZONE))),
        )
    except OSError as error:
        typer.echo(f"error: cannot read {path}: {error.strerror}", err=True)
        raise typer.Exit(2) from None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        typer.echo(
            f"error: {path} is not a json report of this ledger (pledger report --format json): "
            "it needs coalition.id, as_of, position and period (and, when it states one, a "
            "time zone name)",
            err=True,
        )
        raise typer.Exit(2) from None


@app.command("agenda")
def agenda_command(
    within_days: Annotated[int, typer.Option("--within-days", help="How far ahead to look.")] = 14,
    fmt: Annotated[str, typer.Option("--format", help="text, json or ics.")] = "text",
    as_of: AsOfOption = None,
    position: PositionOption = None,
    db: DbOption = None,
) -> None:
    """Check-ins and commitments due soon or overdue, both sides."""
    from api.formats import agenda_ics

    services = open_services(_settings(db))
    try:
        agenda = services.queries.agenda(
            _reference(services, as_of, position), within_days=within_days
        )
    except LedgerError as error:
        raise _fail(error) from None
    if fmt == "json":
        _write(orjson.dumps(agenda, option=orjson.OPT_INDENT_2) + b"\n", None)
    elif fmt == "ics":
        _write(agenda_ics(agenda), None)
    elif fmt == "text":
        typer.echo(
            f"Agenda as of {agenda['as_of']} (position {agenda['position']}), "
            f"next {within_days} days, days counted in {agenda['time_zone']}"
        )
        typer.echo("\nCheck-ins:")
        for item in agenda["checkins"] or [{"name": "(none)"}]:
            typer.echo(f"  {_when(item)}  {_terminal(str(item['name']))}")
        typer.echo("\nCommitments:")
        for item in agenda["commitments"] or [{"name": "(none)"}]:
            who = "we owe" if item.get("owed_by") == "us" else "owed to us by"
            what = (
                f"{who} {item['name']}: {item['description']}"
                if "description" in item
                else item["name"]
            )
            typer.echo(f"  {_when(item)}  {_terminal(what)}")
    else:
        typer.echo("error: --format must be text, json or ics", err=True)
        raise typer.Exit(2)


def _terminal(text: str) -> str:
    """One line for a terminal: an ESC sequence in a name could retitle or clear it, so every
    control character is shown visibly (and line breaks become spaces)."""
    return " ".join(show_controls(text).split())


def _when(item: dict[str, object]) -> str:
    if "due_on" not in item:
        return " " * 24
    days = int(str(item["overdue_days"]))
    status = (
        f"{days} days overdue" if days > 0 else ("due today" if days == 0 else f"in {-days} days")
    )
    return f"{item['due_on']} {status:<13}"


def _write(content: bytes, output: Path | None) -> None:
    with _whole_file_or_none(output) as out:
        out.write(content)


def _base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - a name to print
    return f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"


def sign_in_link(base_url: str, token: str) -> str:
    """The web UI's sign-in link for a token: opening it starts a session (SPEC §8)."""
    return f"{base_url}/signin?token={token}"


@token_app.command("create")
def token_create_command(
    role: Annotated[str, typer.Option("--role", help="steward, viewer, coalition or partner.")],
    name: Annotated[str, typer.Option("--name", help="Who holds it; becomes recorded_by.")],
    coalition: Annotated[
        str | None, typer.Option("--coalition", help="The coalition a coalition token may read.")
    ] = None,
    partner: Annotated[
        str | None,
        typer.Option("--partner", help="The partner a partner token shows its own promises to."),
    ] = None,
    link: Annotated[
        bool,
        typer.Option(
            "--link",
            help="Print a sign-in link for the web UI instead of the bare token "
            "(the server's address from --host/--port or PLEDGER_HOST/PLEDGER_PORT).",
        ),
    ] = False,
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="Lifetime such as 90d, 12h or 8w (default: until revoked)."),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Server address in the link.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Server port in the link.")] = None,
    db: DbOption = None,
) -> None:
    """Create a token; it is printed once, on stdout, and only its hash is kept."""
    try:
        lifetime = parse_lifetime(expires) if expires is not None else None
    except ValueError as error:
        typer.echo(f"error: --expires: {error}", err=True)
        raise typer.Exit(2) from None
    services = open_services(_settings(db))
    try:
        if coalition is not None:
            coalition_id = parse_uuid(coalition, CoalitionNotFound)
            services.ledger.get_coalition(coalition_id)
            coalition = str(coalition_id)  # as the routes compare it: ids ignore case
        if partner is not None:
            partner_id = parse_uuid(partner, PartnerNotFound)
            services.ledger.get_partner(partner_id)
            partner = str(partner_id)
        token = services.tokens.issue(
            role,  # type: ignore[arg-type]
            name,
            coalition,
            partner_id=partner,
            expires_in=lifetime,
        )
    except (LedgerError, ValueError) as error:
        typer.echo(f"error: {getattr(error, 'detail', error)}", err=True)
        raise typer.Exit(1) from None
    settings = services.settings
    services.close()
    if link:
        typer.echo(sign_in_link(_base_url(host or settings.host, port or settings.port), token))
    else:
        typer.echo(token)


def _token_status(token: StoredToken, now: datetime) -> str:
    if token.revoked_at:
        return f"revoked {token.revoked_at[:10]}"
    if token.expires_at and datetime.fromisoformat(token.expires_at) <= now:
        return f"expired {token.expires_at[:10]}"
    return "valid"


@token_app.command("list")
def token_list_command(db: DbOption = None) -> None:
    """Every token: id, name, role, coalition, created, last used, expires, status, feed."""
    ledger = open_ledger(_settings(db))
    tokens = TokenBook(ledger.recorder).tokens()
    ledger.close()
    now = datetime.now(UTC)
    rows = [
        ("ID", "NAME", "ROLE", "COALITION", "CREATED", "LAST USED", "EXPIRES", "STATUS", "FEED")
    ]
    for t in tokens:
        rows.append(
            (
                t.token_id,
                show_controls(t.name),
                t.role,
                t.coalition_id or "-",
                t.created_at[:16].replace("T", " "),
                (t.last_used_at or "never")[:16].replace("T", " "),
                (t.expires_at or "never")[:16].replace("T", " "),
                _token_status(t, now),
                "yes" if t.has_feed else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@token_app.command("revoke")
def token_revoke_command(
    name_or_id: Annotated[str, typer.Argument(help="The token's name or id (pledger token list).")],
    db: DbOption = None,
) -> None:
    """Withdraw a token, its sign-in sessions and its calendar feed (within 2 s everywhere)."""
    ledger = open_ledger(_settings(db))
    try:
        revoked = TokenBook(ledger.recorder).revoke(name_or_id)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        ledger.close()
    typer.echo(f"revoked token {revoked.token_id} ({show_controls(revoked.name)}, {revoked.role})")


@token_app.command("feed")
def token_feed_command(
    name_or_id: Annotated[str, typer.Argument(help="The token's name or id (pledger token list).")],
    revoke: Annotated[
        bool, typer.Option("--revoke", help="Withdraw the feed (the token stays valid).")
    ] = False,
    host: Annotated[str | None, typer.Option("--host", help="Server address in the URL.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Server port in the URL.")] = None,
    db: DbOption = None,
) -> None:
    """Print a calendar feed URL for a token (the agenda alone, read-only, its own secret);
    making a new one withdraws the old. With --revoke, withdraw it."""
    settings = _settings(db)
    ledger = open_ledger(settings)
    book = TokenBook(ledger.recorder)
    try:
        if revoke:
            token = book.close_feed(name_or_id)
            typer.echo(f"withdrew the calendar feed of token {token.token_id}")
            return
        secret = book.open_feed(name_or_id)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        ledger.close()
    typer.echo(feed_url(_base_url(host or settings.host, port or settings.port), secret))


def feed_url(base_url: str, secret: str) -> str:
    """Where a calendar app subscribes to the agenda with a feed's secret (issue 14)."""
    return f"{base_url}/feeds/agenda/{secret}.ics"


@app.command("demo")
def demo_command(
    partners: Annotated[int, typer.Option("--partners", min=1, help="How many partners.")] = 60,
    months: Annotated[
        int, typer.Option("--months", min=1, help="How many months of history.")
    ] = 18,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same ledger.")] = 7,
    if_empty: Annotated[
        bool,
        typer.Option("--if-empty", help="Do nothing (and succeed) when the ledger has events."),
    ] = False,
    db: DbOption = None,
) -> None:
    """Record a realistic example ledger (partners, coalitions, months of history)."""
    services = open_services(_settings(db))
    if not _load_demo(services, partners, months, seed, if_empty=if_empty):
        typer.echo(
            "error: this ledger already has events; the demo goes into an empty ledger", err=True
        )
        raise typer.Exit(1)


def _load_demo(
    services: Services, partners: int, months: int, seed: int, *, if_empty: bool
) -> bool:
    from api.demo import DemoPlan, load_demo

    if services.ledger.last_position() > 0:
        return if_empty
    plan = DemoPlan(partners=partners, months=months, seed=seed)
    with progress_bar("Recording the demo ledger", partners) as advance:
        recorded = load_demo(services.ledger, plan, advance=advance)
    with progress_bar("Building views", recorded) as advance:
        services.keeper.catch_up(advance=advance)
    typer.echo(f"recorded a demo ledger: {partners} partners, {months} months, {recorded} events")
    return True


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to listen on.")] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Load the demo ledger first if the ledger is empty.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Server processes sharing the ledger (about one per CPU core for heavy writing).",
        ),
    ] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every HTTP request (events record who wrote them either way).",
        ),
    ] = False,
    projection: Annotated[
        bool | None,
        typer.Option(
            "--projection/--no-projection",
            help="Keep the views current in these server processes (the default), or leave "
            "them to one `pledger project` process (PostgreSQL; default from "
            "$PLEDGER_PROJECTION).",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Run the HTTP API (uvicorn) on the SQLite file or on $PLEDGER_DATABASE_URL."""
    import uvicorn

    from api.app import create_app

    settings = _settings(db)
    if projection is not None:
        settings = replace(settings, projection="serve" if projection else "process")
    if not settings.serve_keeps_views and settings.store != "postgres":
        typer.echo(
            "error: --no-projection (PLEDGER_PROJECTION=process) needs PostgreSQL "
            "(PLEDGER_DATABASE_URL); on SQLite each server process keeps the views itself",
            err=True,
        )
        raise typer.Exit(2)
    busy = _port_in_use(host or settings.host, port or settings.port)
    if busy is not None:
        typer.echo(f"error: {busy}", err=True)
        raise typer.Exit(1)
    services = open_services(settings)
    if demo:
        _load_demo(services, 60, 18, 7, if_empty=True)
    if not services.tokens.has_any():
        token = services.tokens.issue("steward", "first-steward")
        base = _base_url(host or settings.host, port or settings.port)
        typer.echo(
            "No token existed, so a steward token was created. It is shown once; keep the link"
        )
        typer.echo("private (anyone who opens it signs in as a steward).\n")
        typer.echo("Open the ledger in your browser:\n")
        typer.echo(f"    {sign_in_link(base, token)}\n")
        typer.echo(f"API: curl -H 'Authorization: Bearer {token}' {base}/v1/partners")
        typer.echo("More sign-ins: pledger token create --role viewer --name NAME --link\n")
    services.close()
    typer.echo(f"Serving the ledger in {settings.describe()}", err=True)
    if workers > 1:
        # Each worker process builds its own app from the environment (a writer and views
        # thread of its own); the write lock and the tracking records keep them apart.
        os.environ["PLEDGER_DB"] = str(settings.db_path)
        os.environ["PLEDGER_PROJECTION"] = settings.projection
    uvicorn.run(
        create_app(settings) if workers == 1 else "api.app:create_app",
        factory=workers > 1,
        workers=workers,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        access_log=access_log,
    )


@app.command("project")
def project_command(db: DbOption = None) -> None:
    """Keep the views current in this process alone (PostgreSQL, SPEC §7): run one beside
    `pledger serve --no-projection` workers. Stops on SIGTERM or Ctrl-C; exits 1 if the views
    stop on an error (a process manager then starts it again)."""
    from api.app import log_to_stderr
    from projections.follow import ProjectionClaim

    log_to_stderr()
    settings = _settings(db)
    if settings.store != "postgres":
        typer.echo(
            "error: pledger project needs PostgreSQL (PLEDGER_DATABASE_URL); on SQLite each "
            "server process keeps the views itself",
            err=True,
        )
        raise typer.Exit(2)
    claim = ProjectionClaim(settings.views_env())
    if not claim.acquire():
        typer.echo(
            f"error: another pledger project already keeps the views of {settings.describe()}",
            err=True,
        )
        raise typer.Exit(1)
    services = open_services(settings)
    keeper = services.keeper
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: keeper.interrupt())
    try:
        keeper.start()
        typer.echo(
            f"Keeping the views of the {settings.describe()} current from position "
            f"{services.view.processed_position()}",
            err=True,
        )
        keeper.run_forever()
    except Exception as error:
        typer.echo(f"error: the views stopped: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        services.close()
        claim.release()
    typer.echo("Stopped.", err=True)


def _port_in_use(host: str, port: int) -> str | None:
    """Why the server could not listen on (host, port), said with the way out; None when it
    can. Checked before starting, since uvicorn only logs ``[Errno 98]`` and exits. (Another
    process may still take the port in between: uvicorn then reports it as before.)"""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        return f"cannot listen on {host!r}: {error.strerror}; give another --host"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (is another pledger serve "
                    "running?); choose a free one with --port, such as --port "
                    f"{port + 1 if port < 65535 else 8000}"
                )
            return (
                f"cannot listen on {host}:{port} ({error.strerror}); try another --host or --port"
            )
    return None


def main() -> None:
    app()
