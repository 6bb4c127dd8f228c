"""The framework floor of the append figure (issue 17 item 7): a bare FastAPI app with the same
route, the same pydantic body (``api.schemas.EventBody``) and the same orjson answer as
``POST /v1/partners/{id}/events``, doing no ledger work. ``bench/run.py`` serves it with
uvicorn, as ``pledger serve`` serves the ledger, and drives it with the same clients:
``floor_framework_eps`` is what FastAPI, pydantic and uvicorn allow on this machine.

    python -m uvicorn bench.floor_app:app --port 8100
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import Body, FastAPI, Header
from fastapi.responses import Response

from api.schemas import EventBody

app = FastAPI()


@app.post("/v1/partners/{partner_id}/events", status_code=201)
async def append_event(
    partner_id: str,
    body: Annotated[EventBody, Body()],
    authorization: Annotated[str, Header()] = "",
) -> Response:
    """Validate the body and answer as the ledger does; record nothing."""
    answer = {
        "partner_id": partner_id,
        "version": 1,
        "position": 1,
        "hash": "0" * 64,
        "type": body.type,
        "authorized": bool(authorization),
    }
    return Response(orjson.dumps(answer), status_code=201, media_type="application/json")
