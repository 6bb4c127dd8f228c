"""The FastAPI application: objects built in the lifespan, routes in api.routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.responses import Response

from api.problems import install_problem_handlers
from api.routes import router
from api.settings import Settings
from api.wiring import open_services

__all__ = ["create_app"]

DESCRIPTION = """
An event-sourced, tamper-evident ledger of an organization's relationships with its partners:
every contact, meeting, commitment, payment, thanks, breach and repair is an immutable event.

Send `Authorization: Bearer <token>` (create one with `pledger token create`). Every read takes
`as_of` (the reference "now") and `position` (count only events up to that log position); the
same pair always gives the same answer. Errors are `application/problem+json`.
"""


def create_app(settings: Settings | None = None, *, keep_views_current: bool = True) -> FastAPI:
    """Build the app; the ledger opens when it starts and closes when it stops."""
    resolved = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = open_services(resolved)
        if keep_views_current:
            services.keeper.start()
        else:
            services.keeper.catch_up()
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
    )
    install_problem_handlers(app)
    app.include_router(router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> Response:
        """Liveness: the store answers and the views are caught up (no token needed)."""
        services: Any = app.state.services
        body = {
            "status": "ok" if services.keeper.healthy else "degraded",
            "store": resolved.store,
            "log_position": services.ledger.last_position(),
            "views_position": services.view.processed_position(),
        }
        return Response(orjson.dumps(body), media_type="application/json")

    return app
