"""Idempotency-Keys of writes the group-commit writer saved in one batch (both stores).

Given several writes to one partner, each with its own Idempotency-Key, held back until the
writer takes them as one batch, a retry of each key answers with that write's own event (its
version, position and content), never another's: each key names the version its own job made,
not the partner's version after the whole batch.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.api.conftest import Api

WRITES = 6


def _post(api: Api, partner: str, n: int) -> Any:
    body = {
        "type": "contact_made",
        "occurred_at": f"2025-02-{n + 1:02d}T10:00:00Z",
        "channel": "phone",
        "direction": "inbound",
        "summary": f"call {n}",
    }
    headers = {**api.steward, "Idempotency-Key": f"batched-{n}"}
    return api.client.post(f"/v1/partners/{partner}/events", json=body, headers=headers)


def test_each_key_of_one_batch_replays_its_own_event(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner = api.register("Eastside Tenants Union")
    services = api.app.state.services
    queue: Any = services.writer._queue
    handed: list[object] = []
    put = queue.put

    def hand_over(job: object, *args: Any, **kwargs: Any) -> None:
        handed.append(job)
        put(job, *args, **kwargs)

    monkeypatch.setattr(queue, "put", hand_over)
    with ThreadPoolExecutor(WRITES) as pool:
        # The writer stages what it took first, then waits for the views' lock; every other
        # write queues up behind it, so at least one batch holds several of them.
        with services.keeper.lock:
            answers = [pool.submit(_post, api, partner, n) for n in range(WRITES)]
            deadline = time.monotonic() + 60
            while len(handed) < WRITES and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(handed) == WRITES, "the writes did not reach the writer"
        first = [answer.result() for answer in answers]
    assert [a.status_code for a in first] == [201] * WRITES
    assert len({a.json()["version"] for a in first}) == WRITES

    again = [_post(api, partner, n) for n in range(WRITES)]

    for n, (answered, replayed) in enumerate(zip(first, again, strict=True)):
        assert replayed.status_code == 201, replayed.text
        assert replayed.json() == answered.json(), n
    assert api.event_count() == 1 + WRITES
