"""The /v1 routes (SPEC §4). Handlers parse, call the ledger or its queries, and map; no rules."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import orjson
from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.auth import Forbidden, Principal
from api.formats import FOR_PEOPLE, REPORT_MEDIA_TYPES, agenda_ics, render_report
from api.heavy import heavy_work
from api.inbound import CheckedRoute
from api.params import parse_as_of, parse_day, parse_moment, parse_uuid
from api.problems import problem
from api.schemas import (
    AccountabilityPublic,
    AgendaPublic,
    CheckpointsPublic,
    CoalitionCreate,
    CoalitionPublic,
    CoalitionsPublic,
    CommitmentsPublic,
    ConsistencyProofPublic,
    ErasureCreate,
    EventBody,
    EventRecordedPublic,
    EventsPublic,
    HealthHistoryPublic,
    HealthPublic,
    InclusionProofPublic,
    KeyPublic,
    MemberCreate,
    PartnerCreate,
    PartnerPublic,
    PartnersPublic,
    ProblemPublic,
    RecordedPublic,
    ReportPublic,
    ReviewPublic,
    SharedWithPartnerPublic,
    TimelinePublic,
    VerifyPublic,
    VerifyRunningPublic,
)
from api.service import Ask
from api.subjects import subject_access
from api.verifying import RETRY_AFTER_SECONDS, VerificationState
from api.wiring import Services
from domain.application import Recorded
from domain.dates import in_zone
from domain.errors import CoalitionNotFound, PartnerNotFound, Problem, ValidationFailed
from domain.merkle import consistency_proof, inclusion_proof, tree_head
from domain.serialization import DATA_MODELS, public_event
from domain.values import (
    CoalitionFormed,
    EventData,
    MemberJoined,
    MemberLeft,
    PartnerRegistered,
    Side,
    Stage,
)
from projections.queries import At

__all__ = ["router"]

# 400: a body that is not even text (FastAPI refuses it before validation); the rest from SPEC §4.
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemPublic, "content": {"application/problem+json": {}}}
    for status in (400, 401, 403, 404, 409, 422)
}
# Heavy work (api.heavy) beyond the process's bound: 503 with Retry-After (issue 10 item 11).
_BUSY: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ProblemPublic,
        "content": {"application/problem+json": {}},
        "description": "Too many heavy requests at once; ask again after Retry-After seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    }
}
# CheckedRoute: control characters in a query, a name repeated in a JSON body -> 422 (issue 10).
router = APIRouter(prefix="/v1", responses=_ERRORS, route_class=CheckedRoute)
TData = TypeVar("TData", bound=EventData)
_COMMON_WRITE_FIELDS = {"type", "occurred_at", "expected_version"}


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


# ---- dependencies -------------------------------------------------------------------------


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    principal: Principal = services.tokens.authenticate(authorization)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_steward(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    # The principal is looked up here rather than through PrincipalDep: every write passes
    # this dependency, and each level of dependencies costs FastAPI a resolution per request.
    who = await get_principal(await get_services(request), authorization)
    if who.role != "steward":
        raise Forbidden("Only a steward token can record events.")
    return who


# What a bound token may read instead (SPEC §4), said whenever it asks for something else.
ONLY = {
    "coalition": "A coalition token can read its coalition's page, its report and its members' "
    "figures only.",
    "partner": "A partner token can read only what is shared with that partner: its "
    "commitments (/v1/partners/{id}/commitments) and its shared view (/v1/partners/{id}/shared).",
}


async def get_reader(who: PrincipalDep) -> Principal:
    if who.role not in ("steward", "viewer"):
        raise Forbidden(ONLY[who.role])
    return who


async def get_auditor(who: PrincipalDep) -> Principal:
    """The audit trail's proofs, key and checkpoints (hashes and signatures only): readers,
    and a coalition token, whose members check its report's evidence with them."""
    if who.role == "partner":
        raise Forbidden(ONLY["partner"])
    return who


StewardDep = Annotated[Principal, Depends(get_steward)]
AuditorDep = Annotated[Principal, Depends(get_auditor)]
ReaderDep = Annotated[Principal, Depends(get_reader)]
AsOf = Annotated[
    str | None,
    Query(
        description=(
            "Reference moment: a date (that whole day in the ledger's time zone) or a date and "
            "time (2026-03-15T14:30, read in that zone unless it ends in Z or an offset); "
            "default now."
        )
    ),
]
Position = Annotated[
    int | None,
    Query(ge=0, description="Count only events up to this log position; default the end."),
]


def _at(services: Services, as_of: str | None, position: int | None) -> At:
    return services.queries.at(parse_as_of(as_of, services.settings.zone), position)


def _may_read_figures(
    services: Services, who: Principal, partner_id: str, at: At, *, own_partner: bool = False
) -> None:
    """Stewards and viewers read every partner's figures; a coalition token its members' only;
    a partner token its own commitments (``own_partner``) and nothing else (SPEC §4)."""
    if who.role in ("steward", "viewer"):
        return
    if who.role == "partner":
        if own_partner and who.partner_id == partner_id:
            return
        raise Forbidden(ONLY["partner"])
    assert who.coalition_id is not None
    members = services.queries.coalition(who.coalition_id, at)["members"]
    if partner_id not in {m["partner_id"] for m in members}:
        raise Forbidden("This coalition token can read only its coalition members' figures.")


def _may_read_coalition(who: Principal, coalition_id: str) -> None:
    """Stewards and viewers read every coalition; a coalition token its own; a partner none."""
    if who.role in ("steward", "viewer"):
        return
    if who.role == "coalition" and who.coalition_id == coalition_id:
        return
    raise Forbidden(
        ONLY[who.role]
        if who.role == "partner"
        else ("This coalition token can read only its own coalition and its report.")
    )


# ---- writes: parse, call the service, answer ------------------------------------------


def _ask(who: Principal, request: Request, body: Any, occurred_at: Any = None) -> Ask:
    """The terms of a write from its request: who, when, expected version, Idempotency-Key.
    A date or a time without an offset is read in the ledger's time zone (SPEC §2)."""
    when = occurred_at if occurred_at is not None else getattr(body, "occurred_at", None)
    if when is not None:
        when = in_zone(when, request.app.state.services.settings.zone)
    return Ask(
        recorded_by=who.name,
        occurred_at=when,
        expected_version=getattr(body, "expected_version", None),
        idempotency_key=request.headers.get("idempotency-key"),
        sent=body.model_dump(mode="json", exclude_unset=True),
    )


def _payload(model: type[TData], body: Any) -> TData:
    """The event's own fields from a write body (without type, occurred_at, expected_version),
    keeping which fields the caller actually sent."""
    return model.model_validate(body.model_dump(exclude=_COMMON_WRITE_FIELDS, exclude_unset=True))


def _created(recorded: Recorded) -> Response:
    return _json(
        {
            "id": str(recorded.stream_id),
            "version": recorded.version,
            "position": recorded.position,
            "hash": recorded.hash,
            "type": recorded.type,
            "data": recorded.data,
        },
        201,
    )


def _appended(stream_key: str, recorded: Recorded) -> Response:
    made = {
        k: recorded.data[k]
        for k in ("commitment_id", "breach_id", "feedback_id")
        if recorded.data.get(k)
    }
    return _json(
        {
            stream_key: str(recorded.stream_id),
            "version": recorded.version,
            "position": recorded.position,
            "hash": recorded.hash,
            "type": recorded.type,
            "data": recorded.data,
            **made,
        },
        201,
    )


@router.post("/partners", status_code=201, response_model=RecordedPublic, tags=["partners"])
async def register_partner(
    body: PartnerCreate, request: Request, services: ServicesDep, who: StewardDep
) -> Response:
    """Register a partner (an organization or an individual)."""
    data = _payload(PartnerRegistered, body)
    return _created(await services.service.register_partner(data, _ask(who, request, body)))


@router.post(
    "/partners/{partner_id}/events",
    status_code=201,
    response_model=EventRecordedPublic,
    tags=["partners"],
)
async def append_event(
    partner_id: str, body: Annotated[EventBody, Body()], request: Request, who: StewardDep
) -> Response:
    """Append one event to a partner's history."""
    # The services from the request itself, not ServicesDep: the busiest route skips a level
    # of FastAPI's dependency resolution (see get_steward).
    services = await get_services(request)
    pid = parse_uuid(partner_id, PartnerNotFound)
    data = _payload(DATA_MODELS[body.type], body)
    recorded = await services.service.record_event(pid, data, _ask(who, request, body))
    return _appended("partner_id", recorded)


@router.post("/coalitions", status_code=201, response_model=RecordedPublic, tags=["coalitions"])
async def form_coalition(
    body: CoalitionCreate, request: Request, services: ServicesDep, who: StewardDep
) -> Response:
    """Form a coalition with a shared vision and agreed measures."""
    data = _payload(CoalitionFormed, body)
    return _created(await services.service.form_coalition(data, _ask(who, request, body)))


@router.post(
    "/coalitions/{coalition_id}/members",
    status_code=201,
    response_model=EventRecordedPublic,
    tags=["coalitions"],
)
async def join_coalition(
    coalition_id: str, body: MemberCreate, request: Request, services: ServicesDep, who: StewardDep
) -> Response:
    """A partner joins the coalition."""
    cid = parse_uuid(coalition_id, CoalitionNotFound)
    data = MemberJoined(partner_id=body.partner_id)
    recorded = await services.service.join_coalition(cid, data, _ask(who, request, body))
    return _appended("coalition_id", recorded)


@router.delete(
    "/coalitions/{coalition_id}/members/{partner_id}",
    status_code=201,
    response_model=EventRecordedPublic,
    tags=["coalitions"],
)
async def leave_coalition(
    coalition_id: str,
    partner_id: str,
    request: Request,
    services: ServicesDep,
    who: StewardDep,
    reason: Annotated[str, Query(max_length=10_000)] = "",
    occurred_at: Annotated[str | None, Query(description="When they left; default now.")] = None,
    expected_version: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """A partner leaves the coalition (recorded as `member_left`)."""
    cid = parse_uuid(coalition_id, CoalitionNotFound)
    try:
        pid = UUID(partner_id)
    except ValueError:
        raise ValidationFailed([Problem("partner_id", "is not a partner id (a UUID)")]) from None
    data = MemberLeft(partner_id=pid, reason=reason)
    when = parse_moment(occurred_at, "occurred_at", day_end=False, zone=services.settings.zone)
    ask = _ask(who, request, data, when)
    ask = replace(ask, expected_version=expected_version)
    return _appended("coalition_id", await services.service.leave_coalition(cid, data, ask))


# ---- reads: partners ----------------------------------------------------------------------


@router.get("/partners", response_model=PartnersPublic, tags=["partners"])
def list_partners(
    services: ServicesDep,
    who: ReaderDep,
    stage: Stage | None = None,
    community: str | None = None,
    role: str | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    region: Annotated[str | None, Query(max_length=200)] = None,
    sort: Literal["health", "name", "last_touch"] = "name",
    order: Annotated[
        Literal["asc", "desc"] | None,
        Query(description="asc or desc; default: names A-Z, strongest health first."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """Partners with their health; filter by stage, community, role, region or name; sorted."""
    at = services.queries.at(  # a cursor pins it
        parse_as_of(as_of, services.settings.zone), position, cursor=cursor
    )
    return _json(
        services.queries.partners(
            at,
            stage=stage.value if stage else None,
            community=community,
            role=role,
            q=q,
            region=region,
            sort=sort,
            order=order,
            cursor=cursor,
            limit=limit,
        )
    )


@router.get("/partners/{partner_id}", response_model=PartnerPublic, tags=["partners"])
def show_partner(
    partner_id: str,
    services: ServicesDep,
    who: ReaderDep,
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """A partner's profile, stage and cadence, now or as it stood at as_of/position."""
    partner_id = str(parse_uuid(partner_id, PartnerNotFound))  # ids ignore case (RFC 4122 §3)
    return _json(services.queries.partner(partner_id, _at(services, as_of, position)))


@router.get("/partners/{partner_id}/timeline", response_model=TimelinePublic, tags=["partners"])
def partner_timeline(
    partner_id: str,
    services: ServicesDep,
    who: ReaderDep,
    start: Annotated[
        str | None, Query(alias="from", description="Date or time; inclusive.")
    ] = None,
    end: Annotated[str | None, Query(alias="to", description="Date or time; inclusive.")] = None,
    types: Annotated[
        list[str] | None, Query(description="Event types, comma-separated or repeated.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """The partner's events in world order, retracted ones flagged."""
    partner_id = str(parse_uuid(partner_id, PartnerNotFound))  # ids ignore case (RFC 4122 §3)
    wanted = [t.strip() for item in types or [] for t in item.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in DATA_MODELS]
    if unknown:
        raise ValidationFailed([Problem("types", f"unknown event type {t!r}") for t in unknown])
    return _json(
        services.queries.timeline(
            partner_id,
            services.queries.at(
                parse_as_of(as_of, services.settings.zone), position, cursor=cursor
            ),
            start=parse_moment(start, "from", day_end=False, zone=services.settings.zone),
            end=parse_moment(end, "to", day_end=True, zone=services.settings.zone),
            types=wanted or None,
            cursor=cursor,
            limit=limit,
        )
    )


@router.get("/partners/{partner_id}/health", response_model=HealthPublic, tags=["partners"])
def partner_health(
    partner_id: str,
    services: ServicesDep,
    who: PrincipalDep,
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """Relationship health: score, band, and each component explained."""
    partner_id = str(parse_uuid(partner_id, PartnerNotFound))  # ids ignore case (RFC 4122 §3)
    at = _at(services, as_of, position)
    _may_read_figures(services, who, partner_id, at)
    return _json(services.queries.health(partner_id, at))


@router.get(
    "/partners/{partner_id}/health/history",
    response_model=HealthHistoryPublic,
    tags=["partners"],
    responses=_BUSY,
)
async def partner_health_history(
    request: Request,
    partner_id: str,
    services: ServicesDep,
    who: PrincipalDep,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    interval: Literal["month", "week"] = "month",
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """The health score at each month-end (or each Sunday) between from and to."""
    partner_id = str(parse_uuid(partner_id, PartnerNotFound))  # ids ignore case (RFC 4122 §3)

    def history() -> Response:
        at = _at(services, as_of, position)
        _may_read_figures(services, who, partner_id, at)
        return _json(
            services.queries.health_history(
                partner_id,
                at,
                start=parse_day(start, "from"),
                end=parse_day(end, "to"),
                interval=interval,
            )
        )

    return await heavy_work(request).run("history", request, history)


@router.get(
    "/partners/{partner_id}/commitments", response_model=CommitmentsPublic, tags=["partners"]
)
def partner_commitments(
    partner_id: str,
    services: ServicesDep,
    who: PrincipalDep,
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """Every commitment between us and this partner, with its status."""
    partner_id = str(parse_uuid(partner_id, PartnerNotFound))  # ids ignore case (RFC 4122 §3)
    at = _at(services, as_of, position)
    _may_read_figures(services, who, partner_id, at, own_partner=True)
    return _json(services.queries.commitments(partner_id, at))


@router.get(
    "/partners/{partner_id}/shared", response_model=SharedWithPartnerPublic, tags=["partners"]
)
def partner_shared(
    partner_id: str,
    services: ServicesDep,
    who: PrincipalDep,
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """What is shared with this partner (SPEC §4, the `partner` role): the commitments both ways,
    the payments made to it, the thanks and outcomes shared with it, and the agreed cadence; no
    internal notes or summaries, no health, nobody else. The same view as the partner's own web
    page. Readers may see it for any partner (to check what a partner sees); a partner token for
    its own partner only (403 otherwise)."""
    partner_id = str(parse_uuid(partner_id, PartnerNotFound))  # ids ignore case (RFC 4122 §3)
    if who.role == "coalition" or (who.role == "partner" and who.partner_id != partner_id):
        raise Forbidden(ONLY[who.role])
    return _json(services.queries.partner_view(partner_id, _at(services, as_of, position)))


# ---- personal data (issue 16) --------------------------------------------------------------


@router.post(
    "/partners/{partner_id}/erasure",
    status_code=201,
    response_model=EventRecordedPublic,
    tags=["partners"],
)
async def erase_personal_data(
    partner_id: str, body: ErasureCreate, request: Request, services: ServicesDep, who: StewardDep
) -> Response:
    """Shred the partner's personal data for good (GDPR Art. 17), recording
    `personal_data_erased`: every figure, hash and the digest stay as they were; names and
    notes read as placeholders from then on. With `contact`, only that contact person's data
    (name, role, email, phone) goes, shown as "Erased contact person" from then on; the event
    names them by their person key. 422 (field `contact`) when no such contact person is on
    record."""
    pid = parse_uuid(partner_id, PartnerNotFound)
    recorded = await services.service.erase_personal_data(
        pid, body.reason, _ask(who, request, body), contact=body.contact
    )
    return _appended("partner_id", recorded)


@router.get("/partners/{partner_id}/personal-data", tags=["partners"])
def personal_data(partner_id: str, services: ServicesDep, who: StewardDep) -> Response:
    """Everything held about this person, readable (a subject access request, GDPR Art. 15)."""
    pid = parse_uuid(partner_id, PartnerNotFound)
    services.keeper.catch_up()
    return _json(subject_access(services.keeper.log, services.ledger, pid))


# ---- reads: the portfolio -----------------------------------------------------------------


@router.get("/accountability", response_model=AccountabilityPublic, tags=["accountability"])
def accountability(
    services: ServicesDep,
    who: ReaderDep,
    coalition_id: UUID | None = None,
    owed_by: Side | None = None,
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """Fulfilment figures for both sides, and what is overdue."""
    return _json(
        services.queries.accountability(
            _at(services, as_of, position),
            coalition_id=str(coalition_id) if coalition_id else None,
            owed_by=owed_by.value if owed_by else None,
        )
    )


@router.get("/coalitions", response_model=CoalitionsPublic, tags=["coalitions"])
def list_coalitions(
    services: ServicesDep, who: ReaderDep, as_of: AsOf = None, position: Position = None
) -> Response:
    """Every coalition with its members."""
    return _json(services.queries.coalitions(_at(services, as_of, position)))


@router.get("/coalitions/{coalition_id}", response_model=CoalitionPublic, tags=["coalitions"])
def show_coalition(
    coalition_id: str,
    services: ServicesDep,
    who: PrincipalDep,
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """A coalition: vision, measures and members (a coalition token reads its own)."""
    coalition_id = str(parse_uuid(coalition_id, CoalitionNotFound))  # ids ignore case
    _may_read_coalition(who, coalition_id)
    return _json(services.queries.coalition(coalition_id, _at(services, as_of, position)))


@router.get(
    "/coalitions/{coalition_id}/report",
    response_model=ReportPublic,
    tags=["coalitions"],
    responses={
        200: {"content": {t: {} for t in ("text/csv", "text/markdown", "text/html")}},
        **_BUSY,
    },
)
async def coalition_report(
    request: Request,
    coalition_id: str,
    services: ServicesDep,
    who: PrincipalDep,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    fmt: Annotated[Literal["json", "csv", "md", "html"], Query(alias="format")] = "json",
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """The accountability report to a coalition, with its position and digest."""
    coalition_id = str(parse_uuid(coalition_id, CoalitionNotFound))  # ids ignore case
    _may_read_coalition(who, coalition_id)

    def report() -> Response:
        stated = services.queries.report(
            coalition_id,
            _at(services, as_of, position),
            start=parse_day(start, "from"),
            end=parse_day(end, "to"),
            for_people=fmt in FOR_PEOPLE,
        )
        body = render_report(fmt, stated, locale=services.settings.locale)
        return Response(
            body,
            media_type=REPORT_MEDIA_TYPES[fmt],
            headers=services.report_headers(body, int(stated["position"])),
        )

    return await heavy_work(request).run("report", request, report)


@router.get(
    "/coalitions/{coalition_id}/report/evidence",
    tags=["coalitions"],
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}, "description": "evidence bundle"},
        **_BUSY,
    },
)
async def coalition_report_evidence(
    request: Request,
    coalition_id: str,
    services: ServicesDep,
    who: PrincipalDep,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """The report's evidence bundle: the json report, its events, their proofs, checkpoint.
    Heavy work, bounded with the reports (api.heavy)."""
    coalition_id = str(parse_uuid(coalition_id, CoalitionNotFound))
    _may_read_coalition(who, coalition_id)

    def bundle() -> Response:
        made = services.report_evidence(
            coalition_id,
            _at(services, as_of, position),
            parse_day(start, "from"),
            parse_day(end, "to"),
        )
        return Response(made, media_type="application/json")

    return await heavy_work(request).run("report", request, bundle)


@router.get("/agenda", response_model=AgendaPublic, tags=["agenda"])
def agenda(
    services: ServicesDep,
    who: ReaderDep,
    within_days: Annotated[int, Query(ge=0, le=3660)] = 14,
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """Check-ins and commitments due within N days or overdue, both sides."""
    return _json(services.queries.agenda(_at(services, as_of, position), within_days=within_days))


@router.get(
    "/agenda.ics",
    tags=["agenda"],
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}, "description": "iCalendar"}},
)
def agenda_calendar(
    services: ServicesDep,
    who: ReaderDep,
    within_days: Annotated[int, Query(ge=0, le=3660)] = 14,
    as_of: AsOf = None,
    position: Position = None,
) -> Response:
    """The agenda as an iCalendar feed."""
    items = services.queries.agenda(_at(services, as_of, position), within_days=within_days)
    return Response(agenda_ics(items), media_type="text/calendar; charset=utf-8")


@router.get("/review", response_model=ReviewPublic, tags=["review"])
def review(
    services: ServicesDep, who: ReaderDep, as_of: AsOf = None, position: Position = None
) -> Response:
    """The portfolio review: coverage, over-engaged and neglected partners."""
    return _json(services.queries.review(_at(services, as_of, position)))


# ---- the audit trail ----------------------------------------------------------------------


@router.get("/events", response_model=EventsPublic, tags=["audit"])
def events(
    services: ServicesDep,
    who: ReaderDep,
    # Positions are 64-bit integers in both stores; a larger one would reach the driver and 500.
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """The global log in position order, each event with its hash (SPEC §5)."""
    page = services.ledger.recorder.select_notifications(
        start=after, limit=limit, inclusive_of_start=False
    )
    items = [public_event(services.ledger.decode(n), n.id) for n in page]
    return _json(
        {"events": items, "next_after": items[-1]["position"] if len(items) == limit else None}
    )


_VERIFY_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "model": VerifyRunningPublic,
        "content": {"application/problem+json": {}},
        "description": "No run has completed yet (or, for a fresh one, the log is too large to "
        "wait for): a run is under way. `Location` names where its result will be, "
        "`Retry-After` when to ask.",
    }
}


def _verification_answer(state: VerificationState, asked: str | None = None) -> Response:
    """200 with the latest run (a run started at or after ``asked``, when given), else 202."""
    latest = state.latest
    if latest is not None and (asked is None or latest["started_at"] >= asked):
        return _json(state.answer())
    events = state.running["events"] if state.running else state.log_position
    return problem(
        202,
        f"A verification of the log's {events} events is under way; its result will be at "
        f"/v1/audit/verify. Ask again in {RETRY_AFTER_SECONDS} seconds.",
        title="Verification under way",
        headers={"Location": "/v1/audit/verify", "Retry-After": str(RETRY_AFTER_SECONDS)},
        asked_at=asked,
        running=state.running,
        latest=state.answer() if latest is not None else None,
    )


@router.get(
    "/audit/verify", response_model=VerifyPublic, tags=["audit"], responses=_VERIFY_RESPONSES
)
async def audit_verify(services: ServicesDep, who: ReaderDep) -> Response:
    """The latest verification of the whole log (every hash, chain link, the digest), at once.

    Verification runs in the background (after start-up, as events are added, at least
    hourly; see README): this answers from the latest completed run, with when it ran
    (`verified_at`, `duration_ms`), the log's position now (`log_position`; `current` when
    the run read up to it) and the run under way, if any (`running`). Before the first run
    completes, it starts one and waits for it on a small log (PLEDGER_VERIFY_WAIT_EVENTS),
    else answers 202 with `Location` and `Retry-After`. A steward asks for a fresh run with
    POST."""
    verifications = services.verifications
    state = await run_in_threadpool(verifications.state)
    if state.latest is None:
        state = await run_in_threadpool(verifications.settle, verifications.ask())
    return _verification_answer(state)


@router.post(
    "/audit/verify", response_model=VerifyPublic, tags=["audit"], responses=_VERIFY_RESPONSES
)
async def audit_verify_fresh(services: ServicesDep, who: StewardDep) -> Response:
    """Start a fresh verification of the whole log (stewards).

    Answers 200 with its result once it completes, on a log of at most
    PLEDGER_VERIFY_WAIT_EVENTS events; on a larger log, 202 at once with `Location:
    /v1/audit/verify` (where its result will be) and `Retry-After`. One run at a time per
    ledger: a request made while one runs gets the next run, which starts after it."""
    verifications = services.verifications
    asked = verifications.ask()
    state = await run_in_threadpool(verifications.settle, asked)
    return _verification_answer(state, asked)


@router.get("/audit/key", response_model=KeyPublic, tags=["audit"])
def audit_key(services: ServicesDep, who: AuditorDep) -> Response:
    """The ledger's Ed25519 public key (raw 32 bytes, hex), which signs checkpoints."""
    return _json({"algorithm": "Ed25519", "public_key": services.checkpoints.key.public_key})


@router.get("/audit/checkpoints", response_model=CheckpointsPublic, tags=["audit"])
def audit_checkpoints(services: ServicesDep, who: AuditorDep) -> Response:
    """Every signed checkpoint {position, tree_size, digest, tree_head, time}, oldest first."""
    key = services.checkpoints.key.public_key
    return _json({"checkpoints": [c.as_dict(key) for c in services.checkpoints.all()]})


TreeSize = Annotated[
    int | None,
    Query(ge=1, le=2**63 - 1, description="Leaves in the tree; default: every event so far."),
]


def _tree_size(services: Services, asked: int | None, name: str) -> int:
    size = services.view.chain_head()[2]
    if asked is not None and asked > size:
        raise ValidationFailed([Problem(name, f"is beyond the tree's {size} events")])
    return size if asked is None else asked


@router.get("/audit/proof/inclusion", response_model=InclusionProofPublic, tags=["audit"])
def audit_inclusion_proof(
    services: ServicesDep,
    who: AuditorDep,
    position: Annotated[int, Query(ge=1, le=2**63 - 1)],
    tree_size: TreeSize = None,
) -> Response:
    """RFC 9162 §2.1.3 inclusion proof of the event at a position in a tree size."""
    leaf = services.view.leaves_at([position]).get(position)
    if leaf is None:
        raise ValidationFailed([Problem("position", "holds no event the tree took in")])
    size = _tree_size(services, tree_size, "tree_size")
    index, leaf_hash = leaf
    if index >= size:
        msg = f"is {size}, but the event at this position is leaf {index + 1}"
        raise ValidationFailed([Problem("tree_size", msg)])
    path, head = services.view.tree_computed(
        lambda nodes: (inclusion_proof(nodes, index, size), tree_head(nodes, size))
    )
    return _json(
        {
            "position": position,
            "leaf_index": index,
            "tree_size": size,
            "leaf_hash": leaf_hash.hex(),
            "tree_head": head.hex(),
            "path": [p.hex() for p in path],
        }
    )


@router.get("/audit/proof/consistency", response_model=ConsistencyProofPublic, tags=["audit"])
def audit_consistency_proof(
    services: ServicesDep,
    who: AuditorDep,
    first: Annotated[int, Query(ge=1, le=2**63 - 1)],
    second: TreeSize = None,
) -> Response:
    """RFC 9162 §2.1.4 consistency proof that a tree of `first` leaves is a prefix of `second`."""
    size = _tree_size(services, second, "second")
    if first > size:
        raise ValidationFailed([Problem("first", f"is larger than second ({size})")])
    path, first_head, second_head = services.view.tree_computed(
        lambda nodes: (
            consistency_proof(nodes, first, size),
            tree_head(nodes, first),
            tree_head(nodes, size),
        )
    )
    return _json(
        {
            "first": first,
            "second": size,
            "first_head": first_head.hex(),
            "second_head": second_head.hex(),
            "path": [p.hex() for p in path],
        }
    )
