"""The ``pledger`` command line: parse argv, call the ledger, print, exit non-zero on refusal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from api.progress import progress_bar
from api.settings import Settings
from api.wiring import open_ledger
from projections.audit import export_events, verify_log

__all__ = ["app", "main"]

app = typer.Typer(
    help="Partnership Ledger: an audit trail of promises made, kept and broken.",
    no_args_is_help=True,
    add_completion=False,
)
export_app = typer.Typer(help="Write the ledger out.", no_args_is_help=True)
app.add_typer(export_app, name="export")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="SQLite event log to use (default: $PLEDGER_DB or ./pledger.db)."),
]


def _settings(db: str | None) -> Settings:
    return Settings.from_env(db=db)


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
    out = output.open("wb") if output else sys.stdout.buffer
    try:
        with progress_bar("Exporting events", total) as advance:
            for document in export_events(ledger):
                out.write(orjson.dumps(document) + b"\n")
                advance(1)
    finally:
        if output:
            out.close()
        else:
            out.flush()


@app.command("verify")
def verify_command(db: DbOption = None) -> None:
    """Recompute every event hash, chain link and the ledger digest; fail on any mismatch."""
    ledger = open_ledger(_settings(db))
    with progress_bar("Verifying events", ledger.last_position()) as advance:
        report = verify_log(ledger, advance=advance)
    for problem in report.problems:
        typer.echo(
            f"MISMATCH position {problem.position}: stream {problem.stream_id} "
            f"version {problem.version}: {problem.problem}",
            err=True,
        )
    typer.echo(f"events checked: {report.events_checked}")
    typer.echo(f"position:       {report.position}")
    typer.echo(f"digest:         {report.digest}")
    if not report.ok:
        typer.echo(f"FAILED: {len(report.problems)} problem(s) found.", err=True)
        raise typer.Exit(1)
    typer.echo("OK: every event matches its hash and its chain.")


def main() -> None:
    app()
