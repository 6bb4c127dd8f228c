"""`pledger serve` as its users run it: a real process, a real port, real HTTP (SPEC §4, §6).

Given a fresh store (a SQLite file, or a PostgreSQL database through PLEDGER_DATABASE_URL), the
server starts, prints a first steward token once, answers /healthz, and then keeps a few months
of a partnership over HTTP: partners, a coalition, contacts, meetings, commitments both ways, a
late fulfilment, a payment, thanks, a breach and its repair. The reads (health, accountability,
the coalition report in JSON and HTML, the agenda as iCalendar) tell that story back; every bad
request gets a 4xx problem+json, never a 5xx; writes made by other processes show up within
2 seconds; and SIGTERM stops the server cleanly.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx2
import pytest

from api.settings import Settings
from api.wiring import open_ledger
from domain.chained import Stamp
from domain.values import Channel, ContactMade, Direction, Location, MeetingHeld, MeetingKind

pytestmark = pytest.mark.slow

TOKEN = re.compile(r"pl_[A-Za-z0-9_-]{20,}")
AS_OF = "2025-04-30"
# How long another process's write may take to show through the server (SPEC §3).
VISIBLE_WITHIN_SECONDS = 2.0
# Bounds that only turn a hang into a failure; nothing asserts on how long anything took.
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
COMMAND_TIMEOUT_SECONDS = 120.0


# ---- running the real commands ------------------------------------------------------------


def _pledger_executable() -> str:
    # The console script beside this interpreter first, so a shim cannot pick another Python.
    found = shutil.which("pledger", path=str(Path(sys.executable).parent)) or shutil.which(
        "pledger"
    )
    if found is None:
        pytest.fail("the pledger console script is not installed (pip install -e .)")
    return found


def _environment(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without PLEDGER_* settings, plus the store's URL if any
    (and ``extra``)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PLEDGER_")}
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"  # the first-start banner reaches its file as it is printed
    if settings.database_url:
        env["PLEDGER_DATABASE_URL"] = settings.database_url
    return env


def _store_args(settings: Settings) -> list[str]:
    return [] if settings.database_url else ["--db", str(settings.db_path)]


def pledger(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `pledger ARGS` to completion against the settings' store."""
    return subprocess.run(
        [_pledger_executable(), *args, *_store_args(settings)],
        capture_output=True,
        encoding="utf-8",
        env=_environment(settings),
        cwd=settings.db_path.parent,
        check=False,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    stdout_path: Path
    stderr_path: Path

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout()}\n--- stderr ---\n{self.stderr()}"

    def stop_cleanly(self) -> None:
        """SIGTERM, as a process manager sends it: the app shuts down, the process exits."""
        assert self.process.poll() is None, f"the server died early\n{self.output()}"
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the server ignored SIGTERM\n{self.output()}")
        # uvicorn shuts down gracefully, then re-raises the signal it caught, so a clean stop
        # ends "killed by SIGTERM", as process managers expect; anything else is a crash.
        assert status in (0, -signal.SIGTERM), f"exit status {status}\n{self.output()}"
        stderr = self.stderr()
        assert "Application shutdown complete." in stderr, stderr
        assert "Traceback" not in stderr, stderr


@contextmanager
def serving(
    settings: Settings, name: str, *options: str, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`pledger serve OPTIONS` on a free port (with ``env`` added to its environment), once
    /healthz answers; killed if the test fails first."""
    port = free_port()
    folder = settings.db_path.parent
    stdout_path, stderr_path = folder / f"{name}.stdout", folder / f"{name}.stderr"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            [
                _pledger_executable(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *options,
                *_store_args(settings),
            ],
            stdout=out,
            stderr=err,
            env=_environment(settings, env),
            cwd=folder,
        )
    server = Server(process, f"http://127.0.0.1:{port}", stdout_path, stderr_path)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_until_healthy(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"the server exited with {server.process.returncode}\n{server.output()}")
        try:
            response = httpx2.get(f"{server.url}/healthz", timeout=2.0)
        except httpx2.TransportError:
            time.sleep(0.1)
            continue
        if response.status_code == 200 and response.json()["status"] == "ok":
            return
        time.sleep(0.1)
    pytest.fail(f"/healthz did not answer ok in time\n{server.output()}")


def eventually(check: Callable[[], bool], within: float = VISIBLE_WITHIN_SECONDS) -> bool:
    """Poll ``check`` until it holds or ``within`` seconds have passed; one last try at the end."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


# ---- talking to it ------------------------------------------------------------------------


class Api:
    """A bearer-token client that fails loudly on anything but the status a step expects."""

    def __init__(self, url: str, token: str) -> None:
        self.client = httpx2.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )

    def close(self) -> None:
        self.client.close()

    def call(
        self, method: str, path: str, expect: int | None = 200, **kwargs: Any
    ) -> httpx2.Response:
        """``expect``: the status to insist on (None: any)."""
        response = self.client.request(method, path, **kwargs)
        assert expect is None or response.status_code == expect, (
            f"{method} {path} gave {response.status_code}, not {expect}: {response.text}"
        )
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params).json()

    def post(self, path: str, body: dict[str, Any], expect: int = 201) -> Any:
        return self.call("POST", path, expect, json=body).json()

    def record(self, partner_id: str, type_: str, occurred_at: str, **fields: Any) -> Any:
        body = {"type": type_, "occurred_at": occurred_at, **fields}
        return self.post(f"/v1/partners/{partner_id}/events", body)


@dataclass(frozen=True)
class Story:
    tenants: str  # an organization: a listening session, commitments both ways, a breach
    rosa: str  # an individual we still owe a stipend, overdue
    coalition: str


def record_story(api: Api) -> Story:
    """A few months of a partnership, each event dated when it happened."""
    tenants = api.post(
        "/v1/partners",
        {
            "name": "Eastside Tenants Union",
            "kind": "organization",
            "roles": ["advisory_member"],
            "communities": ["tenants"],
            "region": "East",
            "preferences": {"channels": ["phone", "in_person"], "language": "es"},
            "occurred_at": "2025-01-06T15:00:00Z",
        },
    )["id"]
    rosa = api.post(
        "/v1/partners",
        {
            "name": "Rosa Martinez",
            "kind": "individual",
            "roles": ["speaker"],
            "communities": ["tenants"],
            "occurred_at": "2025-01-06T16:00:00Z",
        },
    )["id"]
    coalition = api.post(
        "/v1/coalitions",
        {
            "name": "Housing Now",
            "shared_vision": "Nobody in the valley loses their home to a rent hike.",
            "agreed_measures": ["evictions prevented"],
            "occurred_at": "2025-01-07T10:00:00Z",
        },
    )["id"]
    for partner_id in (tenants, rosa):
        joined = api.post(
            f"/v1/coalitions/{coalition}/members",
            {"partner_id": partner_id, "occurred_at": "2025-01-08T10:00:00Z"},
        )
        assert joined["coalition_id"] == coalition

    api.record(
        tenants,
        "contact_made",
        "2025-01-10T17:00:00Z",
        channel="phone",
        direction="inbound",
        summary="They asked how to join the advisory panel.",
    )
    api.record(
        tenants,
        "meeting_held",
        "2025-01-20T18:00:00Z",
        kind="listening_session",
        location="theirs",
        summary="Listening session at their hall.",
        attendees=["Dev", "Amira"],
    )
    made = api.record(
        tenants,
        "commitment_made",
        "2025-01-20T19:00:00Z",
        owed_by="us",
        commitment_id="C-US-1",
        description="Stipend for the listening session",
        due_on="2025-02-15",
        resource="financial",
        amount="300.00",
        currency="USD",
        coalition_id=coalition,
    )
    assert made["commitment_id"] == "C-US-1"
    theirs = api.record(
        tenants,
        "commitment_made",
        "2025-01-20T19:05:00Z",
        owed_by="partner",
        description="Share the session notes with their members",
        due_on="2025-02-01",
        resource="deliverable",
    )
    their_id = theirs["commitment_id"]  # made by the server
    assert UUID(their_id)
    api.record(
        tenants,
        "commitment_fulfilled",
        "2025-01-30T12:00:00Z",
        commitment_id=their_id,
        note="Notes went out in Spanish and English.",
    )
    api.record(
        tenants,
        "thanks_expressed",
        "2025-02-02T12:00:00Z",
        form="note",
        for_commitment_id=their_id,
        note="Handwritten card.",
    )
    api.record(
        tenants,
        "commitment_fulfilled",
        "2025-03-01T12:00:00Z",
        commitment_id="C-US-1",
        note="Paid two weeks late.",
    )
    api.record(
        tenants,
        "payment_made",
        "2025-03-01T12:05:00Z",
        amount="300.00",
        currency="USD",
        purpose="stipend",
        commitment_id="C-US-1",
    )
    breach = api.record(
        tenants,
        "trust_breach_recorded",
        "2025-03-02T09:00:00Z",
        breach_id="B-1",
        severity="moderate",
        caused_by="us",
        description="The stipend was paid two weeks late.",
    )
    assert breach["breach_id"] == "B-1"
    api.record(
        tenants,
        "trust_repaired",
        "2025-03-10T15:00:00Z",
        breach_id="B-1",
        summary="Apologised in person; agreed a payment date for next time.",
    )
    api.record(
        tenants,
        "meeting_held",
        "2025-04-01T18:00:00Z",
        kind="check_in",
        location="virtual",
        summary="Monthly check-in.",
    )

    api.record(
        rosa,
        "contact_made",
        "2025-01-15T10:00:00Z",
        channel="email",
        direction="outbound",
        summary="Invited her to speak at the forum.",
    )
    api.record(
        rosa,
        "commitment_made",
        "2025-01-15T10:05:00Z",
        owed_by="us",
        commitment_id="C-US-2",
        description="Speaker fee for the forum",
        due_on="2025-03-01",
        resource="financial",
        amount="150.00",
        currency="USD",
    )
    return Story(tenants, rosa, coalition)


# ---- the story, told back -----------------------------------------------------------------


def check_reads(api: Api, story: Story) -> None:
    health = api.get(f"/v1/partners/{story.tenants}/health", as_of=AS_OF)
    assert 0 <= health["score"] <= 100
    assert health["band"] in ("thriving", "steady", "at_risk", "critical")
    components = {c["name"]: c for c in health["components"]}
    assert set(components) == {
        "cadence",
        "our_reliability",
        "reciprocity",
        "acknowledgment",
        "trust",
    }
    assert all(c["explanation"] for c in components.values())
    # One of ours late (half credit), none overdue; the repaired moderate breach costs 35 / 4.
    assert components["our_reliability"]["score"] == 50
    assert components["trust"]["score"] == pytest.approx(91.25)
    assert components["cadence"]["score"] == 100  # the check-in of 1 April is within 30 days

    commitments = api.get(f"/v1/partners/{story.tenants}/commitments", as_of=AS_OF)
    by_id = {c["commitment_id"]: c for c in commitments["commitments"]}
    assert by_id["C-US-1"]["status"] == "fulfilled_late"
    assert by_id["C-US-1"]["days_late"] == 14
    assert by_id["C-US-1"]["fulfilled_on"] == "2025-03-01"
    (theirs,) = (c for c in by_id.values() if c["owed_by"] == "partner")
    assert theirs["status"] == "fulfilled_on_time"

    accountability = api.get("/v1/accountability", as_of=AS_OF)
    us, partner = accountability["us"], accountability["partner"]
    assert (us["made"], us["fulfilled_late"], us["overdue"], us["open"]) == (2, 1, 1, 0)
    assert us["fulfilment_rate"] == pytest.approx(0.5)
    assert us["on_time_rate"] == 0
    assert (partner["made"], partner["fulfilled_on_time"]) == (1, 1)
    assert partner["on_time_rate"] == 1
    assert [(o["partner_id"], o["commitment_id"]) for o in accountability["overdue"]] == [
        (story.rosa, "C-US-2")
    ]
    assert (
        accountability["overdue"][0]["overdue_days"]
        == (datetime(2025, 4, 30, tzinfo=UTC) - datetime(2025, 3, 1, tzinfo=UTC)).days
    )
    # Before the stipend was due, nothing of ours was late yet.
    early = api.get("/v1/accountability", as_of="2025-02-10", owed_by="us")
    assert (early["us"]["open"], early["us"]["overdue"]) == (2, 0)

    report = api.get(f"/v1/coalitions/{story.coalition}/report", as_of=AS_OF)
    assert report["coalition"] == {"id": story.coalition, "name": "Housing Now"}
    assert re.fullmatch(r"[0-9a-f]{64}", report["digest"])
    members = {m["partner_id"]: m for m in report["members"]}
    assert set(members) == {story.tenants, story.rosa}
    tenants = members[story.tenants]
    assert tenants["payments"] == {"USD": "300.00"}
    assert tenants["thanks"] == 1
    assert tenants["breaches"] == {"open": 0, "repaired": 1}
    assert tenants["us"]["fulfilled_late"] == 1
    assert tenants["partner"]["fulfilled_on_time"] == 1
    assert members[story.rosa]["us"]["overdue"] == 1
    totals = report["totals"]
    assert totals["us"]["made"] == 2
    assert totals["payments"] == {"USD": "300.00"}
    assert totals["breaches"] == {"open": 0, "repaired": 1}
    # The same reference gives the same bytes.
    again = api.call(
        "GET",
        f"/v1/coalitions/{story.coalition}/report",
        params={"as_of": AS_OF, "position": report["position"]},
    )
    assert again.json() == report

    html = api.call(
        "GET", f"/v1/coalitions/{story.coalition}/report", params={"as_of": AS_OF, "format": "html"}
    )
    assert html.headers["content-type"].startswith("text/html")
    assert "<html" in html.text.lower()
    assert "Housing Now" in html.text
    assert "Eastside Tenants Union" in html.text
    assert report["digest"] in html.text

    ics = api.call("GET", "/v1/agenda.ics", params={"as_of": AS_OF, "within_days": 30})
    assert ics.headers["content-type"].startswith("text/calendar")
    unfolded = ics.text.replace("\r\n ", "")
    assert unfolded.startswith("BEGIN:VCALENDAR")
    assert "We owe Rosa Martinez: Speaker fee for the forum" in unfolded
    agenda = api.get("/v1/agenda", as_of=AS_OF, within_days=30)
    assert [c["commitment_id"] for c in agenda["commitments"]] == ["C-US-2"]

    verify = api.call("POST", "/v1/audit/verify").json()
    assert verify["ok"] is True
    assert verify["problems"] == []


# ---- bad requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    why: str
    method: str
    path: str
    status: int
    body: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    content: bytes | None = None


def bad_requests(story: Story) -> list[Bad]:
    p, c = f"/v1/partners/{story.tenants}", f"/v1/coalitions/{story.coalition}"
    events = f"{p}/events"
    contact = {"type": "contact_made", "channel": "phone", "direction": "inbound"}
    return [
        Bad("no token", "GET", "/v1/partners", 401, headers={"Authorization": ""}),
        Bad(
            "a token never issued",
            "GET",
            "/v1/partners",
            401,
            headers={"Authorization": "Bearer pl_not-a-real-token"},
        ),
        Bad(
            "not the bearer scheme",
            "GET",
            "/v1/partners",
            401,
            headers={"Authorization": "Basic dXNlcjpwYXNz"},
        ),
        Bad("unknown partner", "GET", f"/v1/partners/{UUID(int=1)}", 404),
        Bad("not an id", "GET", "/v1/partners/not-a-uuid/health", 404),
        Bad("unknown coalition report", "GET", f"/v1/coalitions/{UUID(int=2)}/report", 404),
        Bad(
            "event for an unknown partner",
            "POST",
            f"/v1/partners/{UUID(int=3)}/events",
            404,
            body=contact,
        ),
        Bad(
            "body is not JSON",
            "POST",
            events,
            422,
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        ),
        Bad(
            "body is not text",
            "POST",
            events,
            400,
            content=b"\xff\xfe\xfd",
            headers={"Content-Type": "application/json"},
        ),
        Bad("body is a list", "POST", events, 422, body=[contact]),
        Bad("unknown event type", "POST", events, 422, body={"type": "gossip_heard"}),
        Bad(
            "missing field", "POST", events, 422, body={"type": "contact_made", "channel": "phone"}
        ),
        Bad("unknown field", "POST", events, 422, body={**contact, "mood": "great"}),
        Bad("bad enum", "POST", events, 422, body={**contact, "channel": "carrier_pigeon"}),
        Bad(
            "future occurred_at",
            "POST",
            events,
            422,
            body={**contact, "occurred_at": "2999-01-01T00:00:00Z"},
        ),
        Bad(
            "occurred_at written day first (read only from a CSV file told the order)",
            "POST",
            events,
            422,
            body={**contact, "occurred_at": "01/02/2025"},
        ),
        Bad(
            "occurred_at as a number",
            "POST",
            events,
            422,
            body={**contact, "occurred_at": 1738400000},
        ),
        Bad(
            "occurred_at out of range in UTC",
            "POST",
            events,
            422,
            body={**contact, "occurred_at": "0001-01-01T00:00:00+14:00"},
        ),
        Bad(
            "money as a JSON number",
            "POST",
            events,
            422,
            body={"type": "payment_made", "amount": 10.5, "currency": "USD", "purpose": "stipend"},
        ),
        Bad(
            "amount not above zero",
            "POST",
            events,
            422,
            body={"type": "payment_made", "amount": "0", "currency": "USD", "purpose": "stipend"},
        ),
        Bad(
            "three places of cents",
            "POST",
            events,
            422,
            body={
                "type": "payment_made",
                "amount": "1.005",
                "currency": "USD",
                "purpose": "stipend",
            },
        ),
        Bad(
            "not a currency",
            "POST",
            events,
            422,
            body={
                "type": "payment_made",
                "amount": "1.00",
                "currency": "DOLLARS",
                "purpose": "stipend",
            },
        ),
        Bad(
            "due before it was made",
            "POST",
            events,
            422,
            body={
                "type": "commitment_made",
                "owed_by": "us",
                "description": "x",
                "due_on": "2025-01-01",
                "resource": "time",
                "occurred_at": "2025-02-01T10:00:00Z",
            },
        ),
        Bad(
            "a commitment id used twice",
            "POST",
            events,
            409,
            body={
                "type": "commitment_made",
                "commitment_id": "C-US-1",
                "owed_by": "us",
                "description": "again",
                "due_on": "2025-06-01",
                "resource": "time",
                "occurred_at": "2025-04-02T10:00:00Z",
            },
        ),
        Bad(
            "unknown commitment",
            "POST",
            events,
            422,
            body={"type": "commitment_fulfilled", "commitment_id": "C-NOPE"},
        ),
        Bad(
            "fulfilled twice",
            "POST",
            events,
            409,
            body={"type": "commitment_fulfilled", "commitment_id": "C-US-1"},
        ),
        Bad(
            "repaired twice",
            "POST",
            events,
            409,
            body={"type": "trust_repaired", "breach_id": "B-1"},
        ),
        Bad(
            "retracting the registration",
            "POST",
            events,
            422,
            body={"type": "entry_retracted", "version": 1, "reason": "oops"},
        ),
        Bad(
            "retracting an unknown version",
            "POST",
            events,
            422,
            body={"type": "entry_retracted", "version": 999, "reason": "oops"},
        ),
        Bad(
            "a stale expected_version", "POST", events, 409, body={**contact, "expected_version": 1}
        ),
        Bad(
            "expected_version as a boolean",
            "POST",
            events,
            422,
            body={**contact, "expected_version": True},
        ),
        Bad("joining twice", "POST", f"{c}/members", 409, body={"partner_id": story.rosa}),
        Bad(
            "joining an unknown partner",
            "POST",
            f"{c}/members",
            422,
            body={"partner_id": str(UUID(int=4))},
        ),
        Bad(
            "leaving before joining",
            "DELETE",
            f"{c}/members/{story.rosa}",
            422,
            params={"occurred_at": "2025-01-07T12:00:00Z"},
        ),
        Bad(
            "leaving with a time out of range",
            "DELETE",
            f"{c}/members/{story.rosa}",
            422,
            params={"occurred_at": "9999-12-31T23:59:59-14:00"},
        ),
        Bad("as_of is not a time", "GET", f"{p}/health", 422, params={"as_of": "yesterday"}),
        Bad(
            "as_of written month first (read only from a CSV file told the order)",
            "GET",
            f"{p}/health",
            422,
            params={"as_of": "4/30/2025 10:00"},
        ),
        Bad(
            "as_of at the end of time",
            "GET",
            "/v1/agenda",
            422,
            params={"as_of": "9999-12-31", "within_days": 3660},
        ),
        Bad("as_of at the start of time", "GET", "/v1/review", 422, params={"as_of": "0001-01-01"}),
        Bad(
            "position beyond the log", "GET", "/v1/accountability", 422, params={"position": 10**9}
        ),
        Bad("negative position", "GET", "/v1/accountability", 422, params={"position": -1}),
        Bad("after beyond a 64-bit position", "GET", "/v1/events", 422, params={"after": 2**63}),
        Bad("unknown report format", "GET", f"{c}/report", 422, params={"format": "pdf"}),
        Bad(
            "report period backwards",
            "GET",
            f"{c}/report",
            422,
            params={"from": "2025-03-01", "to": "2025-01-01"},
        ),
        Bad("limit of zero", "GET", "/v1/partners", 422, params={"limit": 0}),
        Bad("a cursor never given out", "GET", "/v1/partners", 422, params={"cursor": "!!"}),
        Bad("unknown sort", "GET", "/v1/partners", 422, params={"sort": "mood"}),
        Bad("unknown timeline type", "GET", f"{p}/timeline", 422, params={"types": "gossip"}),
        Bad("within_days out of range", "GET", "/v1/agenda", 422, params={"within_days": -1}),
        Bad("owed_by nobody", "GET", "/v1/accountability", 422, params={"owed_by": "them"}),
        Bad("a method the route lacks", "PUT", "/v1/partners", 405, body={}),
    ]


def check_bad_requests(api: Api, story: Story) -> None:
    before = api.get("/v1/events", after=0, limit=1000)["events"]
    wrong = []
    for bad in bad_requests(story):
        response = api.client.request(
            bad.method,
            bad.path,
            json=bad.body if bad.content is None else None,
            content=bad.content,
            params=bad.params,
            headers=bad.headers,
        )
        kind = response.headers.get("content-type", "")
        problem = response.json() if kind.startswith("application/problem+json") else {}
        if (
            response.status_code != bad.status
            or not kind.startswith("application/problem+json")
            or problem.get("status") != bad.status
            or not problem.get("detail")
        ):
            wrong.append(f"{bad.why}: {response.status_code} {kind} {response.text[:300]}")
    assert not wrong, "\n".join(wrong)
    # A refused write records nothing.
    assert api.get("/v1/events", after=0, limit=1000)["events"] == before


def check_idempotency(api: Api, story: Story) -> None:
    body = {
        "type": "contact_made",
        "channel": "text",
        "direction": "inbound",
        "summary": "Thanks for the card!",
        "occurred_at": "2025-02-03T09:00:00Z",
    }
    path = f"/v1/partners/{story.tenants}/events"
    key = {"Idempotency-Key": "e2e-thanks-reply"}
    first = api.call("POST", path, 201, json=body, headers=key).json()
    retry = api.call("POST", path, 201, json=body, headers=key).json()
    assert retry == first
    other = api.call("POST", path, 422, json={**body, "summary": "changed"}, headers=key)
    assert other.headers["content-type"].startswith("application/problem+json")
    timeline = api.get(f"/v1/partners/{story.tenants}/timeline", types="contact_made")
    assert [e["data"]["summary"] for e in timeline["events"]].count("Thanks for the card!") == 1


def check_roles(settings: Settings, server: Server, story: Story) -> None:
    viewer = Api(server.url, issue_token(settings, "--role", "viewer", "--name", "e2e-viewer"))
    member = Api(
        server.url,
        issue_token(
            settings, "--role", "coalition", "--coalition", story.coalition, "--name", "e2e-coal"
        ),
    )
    try:
        viewer.get("/v1/review")
        refused = viewer.call("POST", "/v1/partners", 403, json={"name": "X", "kind": "individual"})
        assert refused.headers["content-type"].startswith("application/problem+json")
        member.get(f"/v1/coalitions/{story.coalition}/report")
        member.get(f"/v1/partners/{story.tenants}/health")
        member.call("GET", f"/v1/partners/{story.tenants}/timeline", 403)
        member.call("GET", "/v1/accountability", 403)
    finally:
        viewer.close()
        member.close()


def issue_token(settings: Settings, *args: str) -> str:
    created = pledger(settings, "token", "create", *args)
    assert created.returncode == 0, created.stderr
    assert TOKEN.fullmatch(created.stdout.removesuffix("\n")), repr(created.stdout)
    assert created.stdout.count("\n") == 1
    return created.stdout.removesuffix("\n")


# ---- writes from other processes ----------------------------------------------------------


def timeline_summaries(api: Api, partner_id: str) -> list[str]:
    events = api.get(f"/v1/partners/{partner_id}/timeline", limit=1000)["events"]
    return [e["data"].get("summary", "") for e in events]


def views_state(api: Api) -> str:
    """What /healthz says of the views (log and views positions), for a failure message."""
    return api.client.get("/healthz").text


def check_cli_import_is_visible(api: Api, settings: Settings, story: Story) -> None:
    path = settings.db_path.parent / "events.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["partner", "type", "occurred_at", "channel", "direction", "summary"])
        writer.writerow(
            [
                story.rosa,
                "contact_made",
                "2025-04-20T10:00:00Z",
                "phone",
                "inbound",
                "Rosa called back about the fee (imported).",
            ]
        )
    imported = pledger(settings, "import", "events", str(path))
    assert imported.returncode == 0, imported.stderr
    assert eventually(
        lambda: "Rosa called back about the fee (imported)." in timeline_summaries(api, story.rosa)
    ), f"`pledger import events` wrote; not shown within 2 s: {views_state(api)}"


def check_direct_write_is_visible(api: Api, settings: Settings, story: Story) -> None:
    ledger = open_ledger(settings)  # a second writer on the same store, in this process
    try:
        ledger.record(
            UUID(story.rosa),
            MeetingHeld(
                kind=MeetingKind.CHECK_IN,
                location=Location.NEUTRAL,
                summary="Coffee with Rosa (written directly).",
            ),
            Stamp(datetime(2025, 4, 21, 9, 0, tzinfo=UTC), "e2e:direct"),
        )
        ledger.record(
            UUID(story.rosa),
            ContactMade(channel=Channel.EMAIL, direction=Direction.OUTBOUND, summary="Follow-up."),
            Stamp(datetime(2025, 4, 21, 12, 0, tzinfo=UTC), "e2e:direct"),
        )
    finally:
        ledger.close()
    assert eventually(lambda: "Follow-up." in timeline_summaries(api, story.rosa)), (
        f"another Partnerships wrote; not shown within 2 s: {views_state(api)}"
    )
    timeline = api.get(f"/v1/partners/{story.rosa}/timeline", types="meeting_held")
    assert [e["recorded_by"] for e in timeline["events"]] == ["e2e:direct"]


# ---- the tests ----------------------------------------------------------------------------


def test_a_served_ledger_keeps_a_partnership_over_http(settings: Settings) -> None:
    with serving(settings, "first", "--access-log") as server:
        banner = server.stdout()
        first_token = TOKEN.search(banner)
        assert first_token is not None, server.output()
        assert "pledger token create" in banner, "the banner should say how to make more tokens"
        assert f"Bearer {first_token.group()}" in banner, "the banner should show how to use it"
        health = httpx2.get(f"{server.url}/healthz", timeout=10.0).json()
        assert health["store"] == settings.store
        # The printed token works.
        first_api = Api(server.url, first_token.group())
        first_api.get("/v1/partners")
        first_api.close()

        api = Api(server.url, issue_token(settings, "--role", "steward", "--name", "e2e"))
        try:
            story = record_story(api)
            check_reads(api, story)
            check_bad_requests(api, story)
            check_idempotency(api, story)
            check_roles(settings, server, story)
            check_cli_import_is_visible(api, settings, story)
            check_direct_write_is_visible(api, settings, story)
            assert api.call("POST", "/v1/audit/verify").json()["ok"] is True
            recorded_by = {e["recorded_by"] for e in api.get("/v1/events", limit=1000)["events"]}
            assert "e2e" in recorded_by
        finally:
            api.close()

        server.stop_cleanly()
        assert not re.search(r'HTTP/1\.1" 5\d\d', server.stderr()), server.stderr()


def test_a_second_start_prints_no_new_token(settings: Settings) -> None:
    with serving(settings, "first") as first:
        first_banner = first.stdout()
        first.stop_cleanly()
    assert len(TOKEN.findall(first_banner)) >= 1, first_banner

    with serving(settings, "second") as second:
        assert httpx2.get(f"{second.url}/healthz", timeout=10.0).status_code == 200
        second.stop_cleanly()
    assert TOKEN.search(second.stdout()) is None, second.stdout()
    assert "steward token was created" not in second.stdout()


def test_two_server_processes_share_one_ledger(settings: Settings) -> None:
    """`--workers 2`: concurrent writers on the same partners, through either process, each
    answered once, every answer readable at once, and the views equal to the log."""
    with serving(settings, "workers", "--workers", "2", "--access-log") as server:
        api = Api(server.url, issue_token(settings, "--role", "steward", "--name", "e2e"))
        partners = [
            api.post("/v1/partners", {"name": f"Shared {n}", "kind": "organization"})["id"]
            for n in range(4)
        ]
        api.close()
        token = issue_token(settings, "--role", "steward", "--name", "e2e-workers")
        failures: list[str] = []

        def write(client: int) -> None:
            own = Api(server.url, token)  # a connection of its own: either process may serve it
            try:
                for step in range(15):
                    partner = partners[(client + step) % len(partners)]
                    body = {"type": "contact_made", "channel": "phone", "direction": "inbound"}
                    made = own.post(f"/v1/partners/{partner}/events", body)
                    timeline = own.get(f"/v1/partners/{partner}/timeline", limit=500)
                    if made["position"] not in {e["position"] for e in timeline["events"]}:
                        failures.append(f"position {made['position']} not yet readable")
            except Exception as error:
                failures.append(repr(error))
            finally:
                own.close()

        threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == [], f"{failures[:3]}\n{server.output()}"

        api = Api(server.url, token)
        try:
            contacts = [
                len(
                    api.get(f"/v1/partners/{p}/timeline", limit=500, types="contact_made")["events"]
                )
                for p in partners
            ]
            assert sum(contacts) == 6 * 15
            assert api.call("POST", "/v1/audit/verify").json()["ok"] is True
            health = httpx2.get(f"{server.url}/healthz", timeout=10.0).json()
            # (PostgreSQL's positions may skip numbers a conflicting write took and gave back.)
            assert health["views_position"] == health["log_position"] >= 4 + 6 * 15
        finally:
            api.close()
        server.stop_cleanly()
    assert not re.search(r'HTTP/1\.1" 5\d\d', server.stderr()), server.stderr()
