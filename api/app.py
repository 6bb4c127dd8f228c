"""The FastAPI application: objects built in the lifespan, routes in api.routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from api.heavy import HeavyWork
from api.problems import install_problem_handlers
from api.routes import router
from api.settings import Settings
from api.web import install_web
from api.web.pages import NeedsSignIn, html_error
from api.wiring import open_services
from api.writer import GroupWriter, ViewsBehindHeader
from domain.values import show_controls
from projections.follow import projection_process_running
from projections.runner import ViewKeeper
from projections.vouching import log_behind_views

__all__ = ["create_app", "log_to_stderr"]

DESCRIPTION = """
An event-sourced, tamper-evident ledger of an organization's relationships with its partners:
every contact, meeting, commitment, payment, thanks, breach and repair is an immutable event.

Send `Authorization: Bearer <token>` (create one with `pledger token create`). Every read takes
`as_of` (the reference "now") and `position` (count only events up to that log position); the
same pair always gives the same answer. Errors are `application/problem+json`.
"""


def _views_error(keeper: ViewKeeper, writer: GroupWriter, views_position: int) -> dict[str, Any]:
    """What stopped the views, and at which event: the one they failed on when the error says
    (a damaged event), else the first one they have not taken."""
    error: BaseException | None = keeper.error
    runner = getattr(keeper, "_runner", None)
    if error is None and runner is not None:
        # The library's runner keeps the error that stopped its thread only in this attribute;
        # its wait() raises it once and forgets it, and then the writer has seen it.
        error = getattr(runner, "_thread_error", None) or writer.views_failure
    position = getattr(error, "position", None) or views_position + 1
    text = f"{type(error).__name__}: {error}" if error is not None else "the views stopped"
    return {"position": position, "error": show_controls(text)}


def log_to_stderr() -> None:
    """Show the ``pledger.*`` loggers' messages (INFO and up) on stderr, as uvicorn shows its
    own: a start-up rebuild's progress, the views' failures."""
    pledger_logger = logging.getLogger("pledger")
    if not pledger_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        pledger_logger.addHandler(handler)
        pledger_logger.setLevel(logging.INFO)


def _parts(services: Any, settings: Settings) -> dict[str, str]:
    """What /healthz says of each part of this process and the processes it relies on."""
    keeper: ViewKeeper = services.keeper
    parts = {
        "writer": "running" if services.writer.running else "stopped",
        "views": "ok" if keeper.healthy else "stopped",
        "views_kept_by": keeper.kept_by,
    }
    if not settings.serve_keeps_views:
        with services.view.datastore.transaction(commit=False) as cursor:
            running = projection_process_running(cursor)
        parts["projection_process"] = "running" if running else "not running"
    return parts


def create_app(settings: Settings | None = None, *, keep_views_current: bool = True) -> FastAPI:
    """Build the app; the ledger opens when it starts and closes when it stops."""
    resolved = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log_to_stderr()
        services = open_services(resolved)
        if keep_views_current and not resolved.serve_keeps_views:
            services.keeper.follow()  # a `pledger project` process keeps them (PostgreSQL)
        elif keep_views_current:
            services.keeper.start()
            services.start_daily_checkpoints()
        else:
            services.keeper.catch_up()
        if keep_views_current:
            services.verifications.start()  # after start-up, then when due (api.verifying)
        services.writer.start()
        app.state.services = services
        try:
            yield
        finally:
            services.close()

    app = FastAPI(
        title="Partnership Ledger",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs and /redoc are served by api.web from assets inside the installed packages.
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    app.state.heavy = HeavyWork()
    app.state.html_error = html_error
    app.include_router(router)
    install_web(app)

    @app.exception_handler(NeedsSignIn)
    async def needs_sign_in(request: Request, _: NeedsSignIn) -> Response:
        if request.method in ("GET", "HEAD"):
            return RedirectResponse("/signin", status_code=303)
        return html_error(request, 403, "Sign in first: nothing was recorded.")

    app.add_middleware(ViewsBehindHeader)

    @app.get("/healthz", tags=["health"])
    def healthz() -> Response:
        """Liveness: the store answers and the views are caught up (no token needed); each
        part (``parts``: the writer, the views and who keeps them, on PostgreSQL whether a
        projection process runs) and the views' lag behind the log in events and seconds;
        the latest verification of the whole log (``verification``: ok, how many problems,
        when, up to which position, whether a run is under way). A failed verification
        makes the status ``tampered``."""
        services: Any = app.state.services
        views_position = services.view.processed_position()
        log_position = services.ledger.last_position()
        lag_events, lag_seconds = services.keeper.lag(log_position)
        body: dict[str, Any] = {
            "status": "ok" if services.keeper.healthy else "degraded",
            "store": resolved.store,
            "log_position": log_position,
            "views_position": views_position,
            "heavy": app.state.heavy.state(),
            "parts": _parts(services, resolved),
            "lag": {
                "events": lag_events,
                "seconds": round(lag_seconds, 3),
                "late_writes": services.writer.views_late,
            },
        }
        rebuilding = services.keeper.rebuilding
        if rebuilding is not None:
            # A new server on a large log: the views are being rebuilt (projections.runner).
            body["status"] = "starting"
            body["views_rebuild"] = {"events_done": rebuilding[0], "events": rebuilding[1]}
        elif body["parts"].get("projection_process") == "not running":
            body["status"] = "degraded"  # the views move only when a write catches them up
        if not services.keeper.healthy:
            body["views_error"] = _views_error(services.keeper, services.writer, views_position)
        tampering = log_behind_views(
            services.view,
            services.keeper.log,
            views_position=views_position,
            log_position=body["log_position"],
        )
        if tampering:
            # Not an outage a restart cures: the log no longer holds what the views took in.
            body["status"] = "tampered"
            body["tampering"] = tampering
        verifications = services.verifications
        verification = verifications.state().health()
        if verifications.error is not None:
            verification["error"] = show_controls(
                f"{type(verifications.error).__name__}: {verifications.error}"
            )
        body["verification"] = verification
        if verification["ok"] is False:
            # A damaged or changed event: as loud as a log behind its views.
            body["status"] = "tampered"
        return Response(orjson.dumps(body), media_type="application/json")

    return app
