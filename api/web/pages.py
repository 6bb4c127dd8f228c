"""Page handlers: read a query or call the write service, then render. No rule lives here.

Every read goes through the same ``LedgerQueries`` as the JSON API and every write through the
same ``LedgerService`` (api.service), so a page can show or do nothing the API would not, and
a refused form shows the API's own words beside each field.
"""

from __future__ import annotations

import csv
import io
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import orjson
from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from api.auth import Forbidden, Principal, Unauthorized, parse_lifetime
from api.formats import FOR_PEOPLE, REPORT_FORMATS, REPORT_MEDIA_TYPES, agenda_ics, render_report
from api.heavy import heavy_work
from api.importing import (
    ImportFileError,
    RowProblem,
    Table,
    decode_table,
    rerun_summary,
    template_csv,
)
from api.inbound import CheckedRoute
from api.params import parse_as_of, parse_day, parse_uuid
from api.partners_file import partners_csv_lines
from api.problems import field_problems
from api.service import Ask
from api.subjects import subject_access
from api.web.forms import (
    CHOSEN_IDS,
    EVENT_LABELS,
    FieldSpec,
    body_from_form,
    event_models,
    field_of_problem,
    field_specs,
    readable,
)
from api.wiring import Services
from domain.application import Recorded
from domain.dates import ORDER_HINT, DateOrder, day_of, read_moment
from domain.errors import (
    CoalitionNotFound,
    Conflict,
    LedgerError,
    NotFound,
    PartnerNotFound,
    Problem,
    ValidationFailed,
    VersionConflict,
)
from domain.hashing import format_instant, parse_instant
from domain.personal import ERASED_PERSON, erased_name
from domain.values import (
    CoalitionFormed,
    ErasureReason,
    MemberJoined,
    MemberLeft,
    PartnerRegistered,
    ProfileUpdated,
    Stage,
    name_key,
    show_controls,
)
from projections.evidence import canonical
from projections.queries import At
from projections.render import promise_sections

__all__ = ["NeedsSignIn", "router", "templates"]

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["readable"] = lambda v: readable(str(v)) if v is not None else ""
templates.env.filters["event_label"] = lambda t: EVENT_LABELS.get(str(t), readable(str(t)))


def _local(context: Any, value: object, width: int) -> str:
    """A stored instant (``2026-04-01T04:00:00.000000Z``) as the ledger's time zone shows it,
    cut to ``width`` characters (10: the day; 16: day and time); a date stays as it is."""
    text = str(value or "")
    if len(text) > 10 and text.endswith("Z"):
        zone = context["request"].app.state.services.settings.zone
        text = parse_instant(text).astimezone(zone).replace(tzinfo=None).isoformat()
    return text[:width].replace("T", " ")


templates.env.filters["day"] = pass_context(lambda context, v: _local(context, v, 10))
templates.env.filters["when"] = pass_context(lambda context, v: _local(context, v, 16))
# The ledger's time zone by name, for the pages that say which zone their days and times are in.
# (Empty on a page rendered without a request, such as the CSRF refusal.)
templates.env.globals["time_zone"] = pass_context(
    lambda context: (
        context["request"].app.state.services.settings.time_zone if "request" in context else ""
    )
)
templates.env.globals["EVENT_LABELS"] = EVENT_LABELS


@pass_context
def _money(context: Any, amount: object, currency: object) -> str:
    """An amount for people in the ledger's locale (``$12,750.50`` under en_US), through
    Babel's CLDR data; the record itself keeps the exact decimal string."""
    if amount in (None, ""):
        return ""
    locale = context["request"].app.state.services.settings.locale
    return str(format_currency(Decimal(str(amount)), str(currency), locale=locale))


templates.env.filters["money"] = _money


def _language(code: object) -> str:
    """A language code (``nv``, ``es-MX``) by its English name, through Babel's CLDR data."""
    text = str(code or "")
    try:
        return str(Locale.parse(text.replace("-", "_")).get_display_name("en") or text)
    except (ValueError, UnknownLocaleError):
        return text


templates.env.filters["language"] = _language
templates.env.filters["month"] = lambda day: date.fromisoformat(str(day)).strftime("%b")

# The same checks at the door as the JSON API (api.inbound): no control character in a query.
router = APIRouter(include_in_schema=False, route_class=CheckedRoute)
PAGE_SIZE = 50
TIMELINE_PAGE = 25


class NeedsSignIn(Exception):
    """No session, or one whose token is no longer valid: GET goes to the sign-in page, a POST
    is refused (403) without recording anything."""


# ---- who is asking ------------------------------------------------------------------------


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_visitor(request: Request, services: ServicesDep) -> Principal:
    session_id = request.session.get("sid")
    if not session_id:
        raise NeedsSignIn
    try:
        principal: Principal = services.tokens.session_holder(str(session_id))
    except Unauthorized:
        request.session.clear()
        raise NeedsSignIn from None
    return principal


VisitorDep = Annotated[Principal, Depends(get_visitor)]


_ONLY = {
    "coalition": "This sign-in opens its coalition's page and report only.",
    "partner": "This sign-in opens its own promises page only.",
}


async def get_reader(who: VisitorDep) -> Principal:
    if who.role not in ("steward", "viewer"):
        raise Forbidden(_ONLY[who.role])
    return who


async def get_steward(who: VisitorDep) -> Principal:
    if who.role != "steward":
        raise Forbidden("Only a steward can record. This sign-in can read but not write.")
    return who


ReaderDep = Annotated[Principal, Depends(get_reader)]
StewardDep = Annotated[Principal, Depends(get_steward)]


def _page(
    request: Request, name: str, who: Principal | None, status: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        name,
        {"who": who, "csrftoken": _csrf(request), "path": request.url.path, **context},
        status_code=status,
    )


def _csrf(request: Request) -> str:
    make = request.scope.get("csrftoken")
    return str(make()) if callable(make) else ""


CSRF_REFUSAL_TITLE = "This form could not be accepted"
CSRF_REFUSAL = (
    "The form did not carry this page's security token (it may have come from another "
    "site, or the page was open too long). Nothing was recorded. Go back, reload the "
    "page and try again."
)
# File uploads whose CSRF token the page itself checks (see is_checked_upload).
UPLOAD_PATHS = frozenset({"/import"})


def is_checked_upload(scope: Mapping[str, Any]) -> bool:
    """A multipart POST to an upload page: its handler checks the CSRF token once the form
    is parsed (:func:`_upload_csrf_refusal`), by the rule asgi-csrf applies to other forms."""
    if scope.get("method") != "POST" or scope.get("path") not in UPLOAD_PATHS:
        return False
    headers = dict(scope.get("headers") or [])
    return bytes(headers.get(b"content-type", b"")).startswith(b"multipart/form-data")


def _upload_csrf_refusal(request: Request, form: FormData) -> HTMLResponse | None:
    """The double-submit check (OWASP CSRF cheat sheet): the form's token must equal the one
    in this browser's signed CSRF cookie (a visitor without a valid cookie is given a fresh
    token, which no form can carry). A 403 page, or None when the form is genuine."""
    sent = str(form.get("csrftoken") or "")
    if sent and secrets.compare_digest(sent, _csrf(request)):
        return None
    return templates.TemplateResponse(
        request,
        "refused.html",
        {"title": CSRF_REFUSAL_TITLE, "detail": CSRF_REFUSAL, "who": None},
        status_code=403,
    )


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _at(services: Services, as_of: str | None = None) -> At:
    return services.queries.at(parse_as_of(as_of or None, services.settings.zone))


# ---- signing in and out -------------------------------------------------------------------


@router.get("/signin")
async def signin_page(
    request: Request, services: ServicesDep, token: str | None = None
) -> Response:
    """The sign-in link (``/signin?token=...``) opens a session and forgets the token."""
    if token:
        return await _open_session(request, services, token)
    return _page(request, "signin.html", None)


@router.post("/signin")
async def signin_form(request: Request, services: ServicesDep) -> Response:
    form = await request.form()
    return await _open_session(request, services, str(form.get("token") or ""))


async def _open_session(request: Request, services: Services, token: str) -> Response:
    try:
        session_id = await run_in_threadpool(services.tokens.open_session, token)
    except Unauthorized:
        return _page(
            request,
            "signin.html",
            None,
            status=401,
            error="That sign-in link or token is not valid for this ledger.",
        )
    request.session.clear()
    request.session["sid"] = session_id  # the cookie names the session, never the token
    return _see_other("/")


@router.post("/signout")
async def signout(request: Request, services: ServicesDep) -> Response:
    """End the session on the server (a kept copy of the cookie stops working) and here."""
    session_id = request.session.get("sid")
    if session_id:
        await run_in_threadpool(services.tokens.end_session, str(session_id))
    request.session.clear()
    return _see_other("/signin")


# ---- home ---------------------------------------------------------------------------------


@router.get("/")
def home(request: Request, services: ServicesDep, who: VisitorDep) -> Response:
    """What needs attention today."""
    if who.role == "coalition":
        return _see_other(f"/coalitions/{who.coalition_id}")
    if who.role == "partner":
        return _see_other("/our-promises")
    at = _at(services)
    return _page(
        request,
        "home.html",
        who,
        at=at.stamp(),
        **_attention(services, at),
        recent=_recent_activity(services, 12),
        digest=services.queries.digest(at),
        verification=services.last_verification(),
    )


_attention_kept: dict[tuple[int, date], dict[str, Any]] = {}


def _attention(services: Services, at: At) -> dict[str, Any]:
    """What needs attention at the reference: promises overdue and due soon, check-ins due,
    weak and neglected relationships. Each reads the reference only through its day, so once
    every snapshot answers there (``settled``) the answer is kept for that position and day."""
    queries = services.queries
    key = (at.position, at.today)
    settled = queries.settled(at)
    if settled and key in _attention_kept:
        return _attention_kept[key]
    agenda = queries.agenda(at, within_days=14)
    weakest = queries.partners(at, sort="health", order="asc", limit=10)["partners"]
    review = queries.review(at)
    found = {
        "overdue": [c for c in agenda["commitments"] if c["overdue_days"] > 0],
        "due_soon": [c for c in agenda["commitments"] if c["overdue_days"] <= 0],
        "checkins": [c for c in agenda["checkins"] if c["overdue_days"] >= 0],
        "at_risk": [p for p in weakest if p["health"]["band"] in ("at_risk", "critical")],
        "neglected": review["neglected"][:10],
        "neglected_count": len(review["neglected"]),
    }
    if settled:
        _attention_kept.clear()  # one reference at a time: the latest
        _attention_kept[key] = found
    return found


def _recent_activity(services: Services, count: int) -> list[dict[str, Any]]:
    last = services.view.processed_position()
    page = services.ledger.recorder.select_notifications(
        start=max(0, last - count), limit=count, inclusive_of_start=False
    )
    names: dict[str, str] = {}
    items = []
    for notification in reversed(page):
        event = services.ledger.decode(notification)
        stream = str(event.originator_id)
        if stream not in names:
            names[stream] = _stream_name(services, stream)
        member = event.data.model_dump(mode="json").get("partner_id")
        if member is not None and member not in names:
            names[member] = _stream_name(services, member)
        items.append(
            {
                "position": notification.id,
                "type": event.data.TYPE,
                "member": names.get(member) if member else None,
                "stream_id": stream,
                "is_partner": event.data.TYPE not in _COALITION_TYPES,
                "name": names[stream],
                "occurred_at": format_instant(event.occurred_at),
                "recorded_by": event.recorded_by,
            }
        )
    return items


_COALITION_TYPES = ("coalition_formed", "member_joined", "member_left")


def _stream_name(services: Services, stream: str) -> str:
    entries = services.keeper.log.stream(stream)
    first = entries[0].data if entries else {}
    return str(first.get("name", stream))


# ---- partners -----------------------------------------------------------------------------

_SORTS = {"health": "Health", "name": "Name", "last_touch": "Last two-way touch"}


def _partner_filters(request: Request) -> dict[str, str]:
    wanted = ("q", "stage", "community", "role", "region", "sort", "order")
    return {k: request.query_params[k] for k in wanted if request.query_params.get(k)}


def _query_partners(
    services: Services, filters: Mapping[str, str], cursor: str | None, limit: int
) -> dict[str, Any]:
    sort = filters.get("sort", "name")
    # People look for the weakest relationships first (issue 13); the API keeps its default.
    order = filters.get("order") or ("asc" if sort == "health" else None)
    stage = filters.get("stage")
    problems = []
    if sort not in _SORTS:
        problems.append(Problem("sort", "must be health, name or last_touch"))
    if order not in (None, "asc", "desc"):
        problems.append(Problem("order", "must be asc or desc"))
    if stage and stage not in {s.value for s in Stage}:
        problems.append(Problem("stage", f"{stage!r} is not a stage"))
    if problems:
        raise ValidationFailed(problems)
    return services.queries.partners(
        # A cursor resumes its walk at the reference of its first page (as_of and position).
        services.queries.at(cursor=cursor) if cursor else _at(services),
        stage=stage,
        community=filters.get("community"),
        role=filters.get("role"),
        region=filters.get("region"),
        q=filters.get("q"),
        sort=sort,  # type: ignore[arg-type]
        order=order,  # type: ignore[arg-type]
        cursor=cursor,
        limit=limit,
    )


@router.get("/partners")
def partners_page(
    request: Request, services: ServicesDep, who: ReaderDep, cursor: str | None = None
) -> Response:
    """Find a partner: search, filters, sort, pages."""
    filters = _partner_filters(request)
    result = _query_partners(services, filters, cursor, PAGE_SIZE)
    next_url = (
        "/partners?" + urlencode({**filters, "cursor": result["next_cursor"]})
        if result["next_cursor"]
        else None
    )
    return _page(
        request,
        "partners.html",
        who,
        result=result,
        filters=filters,
        stages=[s.value for s in Stage],
        sorts=_SORTS,
        next_url=next_url,
        csv_url="/partners.csv" + ("?" + urlencode(filters) if filters else ""),
    )


@router.get("/partners.csv")
def partners_csv(request: Request, services: ServicesDep, who: ReaderDep) -> Response:
    """The partners the page shows (every page of them), as a spreadsheet."""
    filters = _partner_filters(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "id",
            "name",
            "kind",
            "stage",
            "health",
            "band",
            "region",
            "communities",
            "roles",
            "last_touch_at",
        ]
    )
    cursor = None
    while True:
        result = _query_partners(services, filters, cursor, 1000)
        for p in result["partners"]:
            writer.writerow(
                [
                    p["id"],
                    _cell(p["name"]),
                    p.get("kind") or "",
                    p["stage"],
                    p["health"]["score"],
                    p["health"]["band"],
                    _cell(p.get("region") or ""),
                    _cell(";".join(p.get("communities") or ())),
                    _cell(";".join(p.get("roles") or ())),
                    p.get("last_touch_at") or "",
                ]
            )
        cursor = result["next_cursor"]
        if not cursor:
            break
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="partners.csv"'},
    )


def _cell(text: str) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet (OWASP CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/partners/new")
def register_page(request: Request, who: StewardDep) -> Response:
    return _record_form(request, who, _register_form(), {}, None, {})


def _register_form() -> _Form:
    return _Form(
        title="Register a partner",
        action="/partners/new",
        submit="Register partner",
        specs=field_specs(PartnerRegistered, event_type="partner_registered"),
        model=PartnerRegistered,
        back=("/partners", "Partners"),
    )


@router.post("/partners/new")
async def register_submit(request: Request, services: ServicesDep, who: StewardDep) -> Response:
    form = _register_form()
    return await _submit(
        request,
        who,
        form,
        lambda data, ask: services.service.register_partner(data, ask),
        lambda recorded: f"/partners/{recorded.stream_id}",
    )


@router.get("/partners/{partner_id}")
def partner_page(
    request: Request,
    partner_id: str,
    services: ServicesDep,
    who: ReaderDep,
    as_of: str | None = None,
    older: int = 0,
) -> Response:
    """One relationship: profile, health, promises both ways, the timeline; or as it stood."""
    parse_uuid(partner_id, PartnerNotFound)
    queries = services.queries
    at = _at(services, as_of)
    profile = queries.partner(partner_id, at)
    health = queries.health(partner_id, at)
    commitments = queries.commitments(partner_id, at)
    timeline = queries.timeline(partner_id, at, limit=1000)
    newest_first = timeline["events"][::-1]
    older = max(0, older)
    shown = newest_first[older : older + TIMELINE_PAGE]
    history = queries.health_history(partner_id, at, start=at.today - timedelta(days=366), end=None)
    return _page(
        request,
        "partner.html",
        who,
        partner=profile,
        health=health,
        commitments=commitments,
        timeline=shown,
        older=older + TIMELINE_PAGE if len(newest_first) > older + TIMELINE_PAGE else None,
        newer=max(0, older - TIMELINE_PAGE) if older else None,
        history=history["points"],
        as_of=as_of,
        as_of_day=_as_of_day(services, as_of),
        today=datetime.now(services.settings.zone).date().isoformat(),
        record_types=list(event_models()),
        retractable=_retractable(shown),
    )


def _retractable(events: Sequence[dict[str, Any]]) -> set[int]:
    return {
        e["version"]
        for e in events
        if not e["retracted"] and e["type"] not in ("partner_registered", "entry_retracted")
    }


# ---- a partner's own view ------------------------------------------------------------------


@router.get("/our-promises")
def partner_own_page(request: Request, services: ServicesDep, who: VisitorDep) -> Response:
    """What a partner sees with its own sign-in: promises both ways, payments, thanks and
    outcomes shared with it, the agreed cadence; nothing internal (issue 14)."""
    if who.role != "partner" or who.partner_id is None:
        raise Forbidden("This page is a partner's own view; open it with the partner's link.")
    view = services.queries.partner_view(who.partner_id, _at(services))
    return _page(request, "our_promises.html", who, view=view)


@router.post("/partners/{partner_id}/share")
def partner_share(
    request: Request, partner_id: str, services: ServicesDep, who: StewardDep
) -> Response:
    """Make a sign-in link for the partner itself (a partner token), shown once."""
    pid = str(parse_uuid(partner_id, PartnerNotFound))
    name = services.queries.partner(pid, _at(services))["name"]
    token = services.tokens.issue("partner", f"partner: {name}"[:500], partner_id=pid)
    page = _page(
        request,
        "shared.html",
        who,
        partner={"id": pid, "name": name},
        link=f"{_base(request)}/signin?token={token}",
    )
    page.headers["Cache-Control"] = "no-store"
    return page


# ---- erasure (issue 16) ----------------------------------------------------------------------

_REASONS = [
    (ErasureReason.REQUEST.value, "They asked for it (GDPR Art. 17)"),
    (ErasureReason.CONSENT_WITHDRAWN.value, "They withdrew their consent"),
    (ErasureReason.RETENTION.value, "Our retention period ran out"),
    (ErasureReason.LEGAL_OBLIGATION.value, "A legal obligation"),
    (ErasureReason.OTHER.value, "Another reason"),
]


def _erase_page(
    request: Request,
    who: Principal,
    partner: Mapping[str, Any],
    values: Mapping[str, str],
    errors: Mapping[str, str],
) -> HTMLResponse:
    return _page(
        request,
        "erase.html",
        who,
        status=422 if errors else 200,
        partner=partner,
        values=values,
        errors=errors,
        reasons=_REASONS,
        placeholder=erased_name(str(partner["id"])),
        people=_erasable_people(partner),
        erased_person=ERASED_PERSON,
    )


def _held_contacts(partner: Mapping[str, Any]) -> dict[str, Any]:
    """The partner's contacts without the contact people erased (their placeholders are not
    people to record again)."""
    contacts = dict(partner.get("contacts") or {})
    people = contacts.get("people") or ()
    contacts["people"] = [p for p in people if p.get("name") != ERASED_PERSON]
    return contacts


def _erasable_people(partner: Mapping[str, Any]) -> list[str]:
    """The names of the partner's contact people whose data is still held."""
    return [str(p["name"]) for p in _held_contacts(partner)["people"]]


@router.get("/partners/{partner_id}/erase")
def erase_page(
    request: Request, partner_id: str, services: ServicesDep, who: StewardDep
) -> Response:
    """Erase a partner's personal data, once its name is typed to confirm."""
    pid = str(parse_uuid(partner_id, PartnerNotFound))
    partner = services.queries.partner(pid, _at(services))
    empty = {"reason": "request", "confirmation": "", "contact": "", "contact_confirmation": ""}
    return _erase_page(request, who, partner, empty, {})


@router.get("/partners/{partner_id}/personal-data.json")
def personal_data_download(partner_id: str, services: ServicesDep, who: StewardDep) -> Response:
    """Everything held about this person, as a file to hand them (GDPR Art. 15)."""
    pid = parse_uuid(partner_id, PartnerNotFound)
    services.keeper.catch_up()
    document = subject_access(services.keeper.log, services.ledger, pid)
    return Response(
        orjson.dumps(document, option=orjson.OPT_INDENT_2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="personal-data-{pid}.json"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/partners/{partner_id}/erase")
async def erase_submit(
    request: Request, partner_id: str, services: ServicesDep, who: StewardDep
) -> Response:
    pid = parse_uuid(partner_id, PartnerNotFound)
    partner = await run_in_threadpool(services.queries.partner, str(pid), _at(services))
    submitted = await request.form()
    names = ("reason", "confirmation", "contact", "contact_confirmation")
    values = {k: str(submitted.get(k) or "") for k in names}
    errors: dict[str, str] = {}
    if values["reason"] not in {value for value, _ in _REASONS}:
        errors["reason"] = "choose one of the reasons listed"
    contact = values["contact"] or None
    if contact is None:
        if name_key(values["confirmation"].strip()) != name_key(str(partner["name"])):
            errors["confirmation"] = f"type the partner's name, {partner['name']}, exactly"
    elif contact not in _erasable_people(partner):
        errors["contact"] = "choose one of the contact people listed"
    elif name_key(values["contact_confirmation"]) != name_key(contact):
        errors["contact_confirmation"] = f"type the contact person's name, {contact}, exactly"
    if not errors:
        try:
            await services.service.erase_personal_data(
                pid, ErasureReason(values["reason"]), Ask(recorded_by=who.name), contact=contact
            )
        except ValidationFailed as refused:
            errors.update({problem.field: problem.message for problem in refused.problems})
    if errors:
        return _erase_page(request, who, partner, values, errors)
    return _see_other(f"/partners/{pid}")


# ---- record forms -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Form:
    """A form page: its fields and model, where it posts, what its button says, where back
    leads, and the stream version the page was drawn at (a stale page gets a 409)."""

    title: str
    action: str
    submit: str
    specs: list[FieldSpec]
    model: type[BaseModel]
    back: tuple[str, str]
    expected_version: int | None = None


def _event_form(services: Services, partner_id: str, event_type: str) -> _Form:
    models = event_models()
    if event_type not in models:
        raise _unknown_type(event_type)
    at = _at(services)
    profile = services.queries.partner(partner_id, at)
    choices = _choices(services, partner_id, event_type, at)
    return _Form(
        title=f"{EVENT_LABELS[event_type]} — {profile['name']}",
        action=f"/partners/{partner_id}/record/{event_type}",
        submit="Record",
        specs=field_specs(models[event_type], event_type=event_type, choices=choices),
        model=models[event_type],
        back=(f"/partners/{partner_id}", profile["name"]),
        expected_version=profile["version"],
    )


def _unknown_type(event_type: str) -> LedgerError:
    return ValidationFailed([Problem("type", f"unknown event type {event_type!r}")])


def _choices(
    services: Services, partner_id: str, event_type: str, at: At
) -> dict[str, list[tuple[str, str]]]:
    """What a select offers: this partner's commitments, breaches, feedback and entries, and
    the ledger's coalitions. (Offering is not deciding: the aggregate still checks.)"""
    queries = services.queries
    commitments = queries.commitments(partner_id, at)["commitments"]

    def described(c: dict[str, Any]) -> tuple[str, str]:
        side = "we owe" if c["owed_by"] == "us" else "they owe"
        return c["commitment_id"], f"{c['description']} ({side}, due {c['due_on']})"

    pending = [described(c) for c in commitments if c["status"] in ("open", "overdue")]
    snap = queries.snapshot(partner_id, at)
    events = queries.timeline(partner_id, at, limit=1000)["events"]
    choices: dict[str, list[tuple[str, str]]] = {
        "commitment_id": pending
        if event_type != "payment_made"
        else [described(c) for c in commitments],
        "for_commitment_id": [described(c) for c in commitments],
        "breach_id": [
            (
                b.breach_id,
                f"{readable(b.severity)} breach of {day_of(b.occurred_at, at.zone).isoformat()}",
            )
            for b in snap.breaches.values()
            if b.repaired_at is None
        ],
        "feedback_id": [
            (e["data"]["feedback_id"], f"{_day(e, at)}: {e['data']['summary'][:80]}")
            for e in events
            if e["type"] == "feedback_received" and not e["retracted"]
        ],
        "version": [
            (
                str(e["version"]),
                f"{_day(e, at)} {EVENT_LABELS.get(e['type'], e['type'])} (entry {e['version']})",
            )
            for e in events
            if e["version"] in _retractable(events)
        ],
        "coalition_id": [(c["id"], c["name"]) for c in queries.coalitions(at)["coalitions"]],
    }
    return {k: v for k, v in choices.items() if k in CHOSEN_IDS or k == "coalition_id"}


@router.get("/partners/{partner_id}/record/{event_type}")
def record_page(
    request: Request, partner_id: str, event_type: str, services: ServicesDep, who: StewardDep
) -> Response:
    parse_uuid(partner_id, PartnerNotFound)
    form = _event_form(services, partner_id, event_type)
    preset = {k: v for k, v in request.query_params.items() if k in {s.name for s in form.specs}}
    if event_type == "profile_updated":
        # Contacts are edited, not retyped: the form starts from the ones on record.
        contacts = _held_contacts(services.queries.partner(partner_id, _at(services)))
        preset = {**_contact_values(contacts), **preset}
    return _record_form(request, who, form, preset, None, {})


def _contact_values(contacts: Mapping[str, Any]) -> dict[str, str]:
    """A partner's contacts as the profile form's fields show them."""
    people = [
        "; ".join(str(person.get(part) or "") for part in ("name", "role", "email", "phone"))
        for person in contacts.get("people") or ()
    ]
    return {
        "contacts.emails": "\n".join(contacts.get("emails") or ()),
        "contacts.phones": "\n".join(contacts.get("phones") or ()),
        "contacts.address": contacts.get("address") or "",
        "contacts.people": "\n".join(line.rstrip("; ") for line in people),
    }


def _without_unchanged_contacts(services: Services, partner_id: str, data: Any) -> Any:
    """A profile update from the form without its contacts when they are the ones on record
    (the form shows them filled in), so that changing the region records no contacts."""
    if not isinstance(data, ProfileUpdated) or data.contacts is None:
        return data
    current = _held_contacts(services.queries.partner(partner_id, _at(services)))
    if data.contacts.model_dump(mode="json") == current:
        return data.model_copy(update={"contacts": None})
    return data


@router.post("/partners/{partner_id}/record/{event_type}")
async def record_submit(
    request: Request, partner_id: str, event_type: str, services: ServicesDep, who: StewardDep
) -> Response:
    pid = parse_uuid(partner_id, PartnerNotFound)
    form = await run_in_threadpool(_event_form, services, partner_id, event_type)
    return await _submit(
        request,
        who,
        form,
        lambda data, ask: services.service.record_event(
            pid, _without_unchanged_contacts(services, partner_id, data), ask
        ),
        lambda recorded: f"/partners/{partner_id}#entry-{recorded.version}",
    )


def _record_form(
    request: Request,
    who: Principal,
    form: _Form,
    values: Mapping[str, Any],
    message: str | None,
    errors: Mapping[str, list[str]],
    *,
    status: int = 200,
    idempotency_key: str | None = None,
    occurred_at: str | None = None,
) -> HTMLResponse:
    zone = request.app.state.services.settings.zone
    now = datetime.now(zone).strftime("%Y-%m-%dT%H:%M")
    return _page(
        request,
        "record.html",
        who,
        status=status,
        form=form,
        values=values,
        message=message,
        errors=errors,
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        occurred_at=occurred_at if occurred_at is not None else now,
        max_occurred_at=(datetime.now(zone) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"),
    )


async def _submit(
    request: Request,
    who: Principal,
    form: _Form,
    call: Callable[[Any, Ask], Awaitable[Recorded]],
    then: Callable[[Recorded], str],
) -> Response:
    """Parse a submitted form, call the write service, and either go on to the result or show
    the form again with each problem beside its field."""
    submitted = await request.form()
    values: dict[str, Any] = {
        spec.name: (
            submitted.getlist(spec.name)
            if spec.control == "checkboxes"
            else submitted.get(spec.name)
        )
        for spec in form.specs
    }
    occurred_text = str(submitted.get("occurred_at") or "")
    key = str(submitted.get("idempotency_key") or "") or None
    expected_text = str(submitted.get("expected_version") or "")
    errors: dict[str, list[str]] = {}
    message = None
    status = 422
    try:
        occurred_at = _occurred_at(occurred_text, request.app.state.services.settings.zone)
        body = body_from_form(form.specs, values)
        try:
            data = form.model.model_validate(body)
        except ValidationError as error:
            raise ValidationFailed(
                [Problem(p["field"], p["message"]) for p in field_problems(error.errors())]
            ) from None
        ask = Ask(
            recorded_by=who.name,
            occurred_at=occurred_at,
            expected_version=int(expected_text) if expected_text.isdigit() else None,
            idempotency_key=key,
            sent={
                **body,
                "occurred_at": occurred_text,
                "expected_version": expected_text,
                "form": form.action,
            },
        )
        recorded = await call(data, ask)
    except ValidationFailed as error:
        for problem in error.problems:
            name, where = field_of_problem(problem.field, form.specs)
            errors.setdefault(name, []).append(
                f"{where}: {problem.message}" if where else problem.message
            )
        message = "The entry was not recorded. Please correct what is marked below."
    except VersionConflict:
        status = 409
        message = (
            "Someone recorded something for this partner while you had this form open, so "
            "nothing was recorded. Check the partner's page for what changed, then submit "
            "again."
        )
        key = None  # a new attempt is a new request
    except LedgerError as error:
        status = 409 if isinstance(error, Conflict) else 404 if isinstance(error, NotFound) else 422
        message = f"The entry was not recorded: {error.detail}"
    else:
        return _see_other(then(recorded))
    return _record_form(
        request,
        who,
        form,
        values,
        message,
        errors,
        status=status,
        idempotency_key=key,
        occurred_at=occurred_text,
    )


def _occurred_at(text: str, zone: tzinfo) -> datetime | None:
    """A form's "when it happened" (``YYYY-MM-DDTHH:MM``, read in the ledger's time zone)."""
    if not text.strip():
        return None
    try:
        return read_moment(text.strip(), zone)
    except ValueError as error:
        raise ValidationFailed([Problem("occurred_at", str(error))]) from None


def _day(entry: Mapping[str, Any], at: At) -> str:
    """The day a timeline entry happened on, in the ledger's time zone."""
    return day_of(parse_instant(entry["occurred_at"]), at.zone).isoformat()


def _as_of_day(services: Services, as_of: str | None) -> str | None:
    """The day an ``as_of`` asked for falls on in the ledger's time zone."""
    moment = parse_as_of(as_of, services.settings.zone) if as_of else None
    return day_of(moment, services.settings.zone).isoformat() if moment else None


# ---- coalitions ---------------------------------------------------------------------------


@router.get("/coalitions")
def coalitions_page(request: Request, services: ServicesDep, who: ReaderDep) -> Response:
    return _page(
        request, "coalitions.html", who, coalitions=services.queries.coalitions(_at(services))
    )


def _coalition_form() -> _Form:
    return _Form(
        title="Form a coalition",
        action="/coalitions/new",
        submit="Form coalition",
        specs=field_specs(CoalitionFormed, event_type="coalition_formed"),
        model=CoalitionFormed,
        back=("/coalitions", "Coalitions"),
    )


@router.get("/coalitions/new")
def coalition_new(request: Request, who: StewardDep) -> Response:
    return _record_form(request, who, _coalition_form(), {}, None, {})


@router.post("/coalitions/new")
async def coalition_submit(request: Request, services: ServicesDep, who: StewardDep) -> Response:
    return await _submit(
        request,
        who,
        _coalition_form(),
        lambda data, ask: services.service.form_coalition(data, ask),
        lambda recorded: f"/coalitions/{recorded.stream_id}",
    )


def _coalition_reader(who: Principal, coalition_id: str) -> None:
    if who.role in ("steward", "viewer"):
        return
    if who.role == "coalition" and who.coalition_id == coalition_id:
        return
    raise Forbidden(_ONLY[who.role] if who.role == "partner" else _ONLY["coalition"])


@router.get("/coalitions/{coalition_id}")
async def coalition_page(
    request: Request,
    coalition_id: str,
    services: ServicesDep,
    who: VisitorDep,
    as_of: str | None = None,
) -> Response:
    """A coalition: vision, measures, members with health, and its report in the page."""
    parse_uuid(coalition_id, CoalitionNotFound)
    start = request.query_params.get("from") or None
    end = request.query_params.get("to") or None
    as_of = as_of or None
    _coalition_reader(who, coalition_id)

    def page() -> Response:  # the report in it is heavy work (api.heavy)
        at = _at(services, as_of)
        coalition = services.queries.coalition(coalition_id, at)
        report = services.queries.report(
            coalition_id,
            at,
            start=parse_day(start, "from"),
            end=parse_day(end, "to"),
            for_people=True,
        )
        promises, promises_note = promise_sections(
            report, services.settings.locale, services.settings.zone
        )
        period = {k: v for k, v in (("from", start), ("to", end), ("as_of", as_of)) if v}
        members = {m["partner_id"] for m in coalition["members"]}
        candidates = []
        if who.role == "steward":
            every = services.queries.partners(at, sort="name", limit=1000)["partners"]
            candidates = [(p["id"], p["name"]) for p in every if p["id"] not in members]
        return _page(
            request,
            "coalition.html",
            who,
            coalition=coalition,
            report=report,
            period=period,
            query=("?" + urlencode(period)) if period else "",
            candidates=candidates,
            formats={"json": "JSON", "csv": "CSV", "md": "Markdown", "html": "HTML"},
            promises=promises,
            promises_note=promises_note,
        )

    return await heavy_work(request).run("report", request, page)


@router.get("/coalitions/{coalition_id}/report.{fmt}")
async def coalition_report_download(
    request: Request,
    coalition_id: str,
    fmt: str,
    services: ServicesDep,
    who: VisitorDep,
    as_of: str | None = None,
) -> Response:
    """The report as a file, in the same formats as the API's."""
    parse_uuid(coalition_id, CoalitionNotFound)
    _coalition_reader(who, coalition_id)
    if fmt not in REPORT_FORMATS:
        raise ValidationFailed([Problem("format", "must be json, csv, md or html")])
    start, end = request.query_params.get("from"), request.query_params.get("to")

    def report() -> Response:
        stated = services.queries.report(
            coalition_id,
            _at(services, as_of),
            start=parse_day(start, "from"),
            end=parse_day(end, "to"),
            for_people=fmt in FOR_PEOPLE,
        )
        name = f"coalition-report-{stated['position']}.{fmt}"
        body = render_report(fmt, stated, locale=services.settings.locale)
        return Response(
            body,
            media_type=REPORT_MEDIA_TYPES[fmt],
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                **services.report_headers(body, int(stated["position"])),
            },
        )

    return await heavy_work(request).run("report", request, report)


@router.post("/coalitions/{coalition_id}/members")
async def coalition_join(
    request: Request, coalition_id: str, services: ServicesDep, who: StewardDep
) -> Response:
    cid = parse_uuid(coalition_id, CoalitionNotFound)
    form = await request.form()
    return await _membership(
        request,
        coalition_id,
        lambda ask, partner: services.service.join_coalition(
            cid, MemberJoined(partner_id=partner), ask
        ),
        who,
        str(form.get("partner_id") or ""),
        form,
    )


@router.post("/coalitions/{coalition_id}/members/{partner_id}/leave")
async def coalition_leave(
    request: Request, coalition_id: str, partner_id: str, services: ServicesDep, who: StewardDep
) -> Response:
    cid = parse_uuid(coalition_id, CoalitionNotFound)
    form = await request.form()
    reason = str(form.get("reason") or "")
    if form.get("confirmed") != "yes":  # a leave is recorded for good: ask once more
        coalition = services.queries.coalition(str(cid), _at(services))
        pid = str(parse_uuid(partner_id, PartnerNotFound))
        member = next((m for m in coalition["members"] if m["partner_id"] == pid), None)
        if member is None:
            raise ValidationFailed([Problem("partner_id", "is not a member of this coalition")])
        return _page(
            request, "confirm_leave.html", who, coalition=coalition, member=member, reason=reason
        )
    return await _membership(
        request,
        coalition_id,
        lambda ask, partner: services.service.leave_coalition(
            cid, MemberLeft(partner_id=partner, reason=reason), ask
        ),
        who,
        partner_id,
        form,
    )


async def _membership(
    request: Request,
    coalition_id: str,
    call: Callable[[Ask, uuid.UUID], Awaitable[Recorded]],
    who: Principal,
    partner_id: str,
    form: FormData,
) -> Response:
    try:
        try:
            partner = uuid.UUID(partner_id)
        except ValueError:
            raise ValidationFailed([Problem("partner_id", "choose a partner")]) from None
        ask = Ask(
            recorded_by=who.name,
            idempotency_key=str(form.get("idempotency_key") or "") or None,
            sent={"partner_id": partner_id, "form": request.url.path},
        )
        await call(ask, partner)
    except LedgerError as error:
        return _page(
            request,
            "refused.html",
            who,
            status=409 if isinstance(error, Conflict) else 422,
            title="The membership was not changed",
            detail=error.detail,
            back=f"/coalitions/{coalition_id}",
        )
    return _see_other(f"/coalitions/{coalition_id}#members")


# ---- agenda, review, audit ----------------------------------------------------------------


@router.get("/agenda")
def agenda_page(
    request: Request, services: ServicesDep, who: ReaderDep, within_days: int = 14
) -> Response:
    agenda = services.queries.agenda(_at(services), within_days=max(0, min(within_days, 3660)))
    return _page(request, "agenda.html", who, agenda=agenda)


@router.get("/agenda.ics")
def agenda_calendar_file(
    request: Request, services: ServicesDep, who: ReaderDep, within_days: int = 14
) -> Response:
    """The agenda as an iCalendar file (RFC 5545), to open in a calendar app."""
    agenda = services.queries.agenda(_at(services), within_days=max(0, min(within_days, 3660)))
    return Response(
        agenda_ics(agenda),
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="pledger-agenda.ics"'},
    )


@router.get("/feeds/agenda/{secret}.ics")
def agenda_feed(secret: str, services: ServicesDep, within_days: int = 14) -> Response:
    """The agenda as a calendar feed read by URL alone (calendar apps send no header): the
    feed's own secret names the token, and a withdrawn feed or token gets 401 (issue 14)."""
    who = services.tokens.authenticate_feed(secret)
    if who.role not in ("steward", "viewer"):
        raise Forbidden("This token cannot read the agenda.")
    agenda = services.queries.agenda(_at(services), within_days=max(0, min(within_days, 3660)))
    return Response(
        agenda_ics(agenda),
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300"},
    )


@router.get("/review")
def review_page(request: Request, services: ServicesDep, who: ReaderDep) -> Response:
    return _page(request, "review.html", who, review=services.queries.review(_at(services)))


@router.get("/audit")
def audit_page(request: Request, services: ServicesDep, who: ReaderDep) -> Response:
    checkpoints = services.checkpoints
    state = services.verifications.state()
    return _page(
        request,
        "audit.html",
        who,
        verification=state.answer() if state.latest is not None else None,
        running=state.running,
        digest=services.queries.digest(_at(services)),
        public_key=checkpoints.key.public_key,
        checkpoints=checkpoints.newest(AUDIT_CHECKPOINTS_SHOWN),
    )


AUDIT_CHECKPOINTS_SHOWN = 10


@router.get("/audit/checkpoints/{position}.json")
def audit_checkpoint_file(position: int, services: ServicesDep, who: ReaderDep) -> Response:
    """The latest signed checkpoint at ``position``, as the file `pledger checkpoint` writes:
    to keep outside the ledger (emailed to a coalition) for `pledger verify --checkpoint`."""
    checkpoints = services.checkpoints
    kept = [c for c in checkpoints.all() if c.position == position]
    if not kept:
        raise NotFound(f"No signed checkpoint at position {position}.")
    body = canonical(kept[-1].as_dict(checkpoints.key.public_key)) + b"\n"
    name = f"pledger-checkpoint-{position}.json"
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/audit/checkpoint")
def audit_sign_checkpoint(request: Request, services: ServicesDep, who: StewardDep) -> Response:
    """Sign a checkpoint of the record as it is now (the views brought up to the log first)."""
    services.keeper.catch_up()
    services.checkpoints.make()
    return _see_other("/audit#h-checkpoints")


@router.post("/audit/verify")
def audit_verify(request: Request, services: ServicesDep, who: StewardDep) -> Response:
    """Ask for a fresh verification (in the background, api.verifying); on a small log wait
    for it. The audit page then shows its result, or that it is under way."""
    verifications = services.verifications
    verifications.settle(verifications.ask())
    return _see_other("/audit")


# ---- tokens: who may sign in, and their calendar feeds -------------------------------------

_LIFETIMES = {
    "": "Until revoked",
    "7d": "7 days",
    "30d": "30 days",
    "90d": "90 days",
    "365d": "A year",
}


@router.get("/tokens")
def tokens_page(request: Request, services: ServicesDep, who: StewardDep) -> Response:
    """Every token with its life; make, revoke, and give calendar feeds (stewards only)."""
    return _tokens(request, services, who)


def _tokens(
    request: Request,
    services: Services,
    who: Principal,
    *,
    status: int = 200,
    made: dict[str, str] | None = None,
    problem: str | None = None,
) -> Response:
    now = datetime.now(UTC)
    listed = [
        {
            "token": t,
            "valid": not t.revoked_at
            and not (t.expires_at and datetime.fromisoformat(t.expires_at) <= now),
        }
        for t in reversed(services.tokens.tokens())
    ]
    page = _page(
        request,
        "tokens.html",
        who,
        status=status,
        tokens=listed,
        coalitions=services.queries.coalitions(_at(services))["coalitions"],
        lifetimes=_LIFETIMES,
        made=made,
        problem=problem,
    )
    page.headers["Cache-Control"] = "no-store"  # a token or feed secret is shown once
    return page


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.post("/tokens")
async def token_create(request: Request, services: ServicesDep, who: StewardDep) -> Response:
    """Make a token: shown once, with its sign-in link, on the page that answers."""
    form = await request.form()
    role = str(form.get("role") or "")
    coalition = str(form.get("coalition_id") or "") or None
    expires = str(form.get("expires") or "")
    try:
        lifetime = parse_lifetime(expires) if expires else None
        if role != "coalition":
            coalition = None
        token = services.tokens.issue(
            role,  # type: ignore[arg-type]
            str(form.get("name") or ""),
            coalition,
            expires_in=lifetime,
        )
    except ValueError as error:
        return _tokens(request, services, who, status=422, problem=str(error))
    link = f"{_base(request)}/signin?token={token}"
    return _tokens(request, services, who, made={"token": token, "link": link, "what": "token"})


@router.post("/tokens/{token_id}/revoke")
def token_revoke(
    request: Request, token_id: str, services: ServicesDep, who: StewardDep
) -> Response:
    try:
        services.tokens.revoke(token_id)
    except ValueError as error:
        return _tokens(request, services, who, status=404, problem=str(error))
    return _see_other("/tokens")


@router.post("/tokens/{token_id}/feed")
async def token_feed(
    request: Request, token_id: str, services: ServicesDep, who: StewardDep
) -> Response:
    """Give a token a calendar feed (a new one withdraws the old), or withdraw it."""
    form = await request.form()
    try:
        if form.get("action") == "withdraw":
            services.tokens.close_feed(token_id)
            return _see_other("/tokens")
        secret = services.tokens.open_feed(token_id)
    except ValueError as error:
        return _tokens(request, services, who, status=422, problem=str(error))
    url = f"{_base(request)}/feeds/agenda/{secret}.ics"
    return _tokens(request, services, who, made={"link": url, "what": "feed"})


# ---- the API's own documentation, served from here ----------------------------------------


# ---- moving in from a spreadsheet ----------------------------------------------------------

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # a 100,000-row events file is ~20 MB


@router.get("/import")
def import_page(request: Request, who: StewardDep) -> Response:
    """Upload a partners or events file: every problem, or what was recorded."""
    return _page(request, "import.html", who)


@router.post("/import")
async def import_upload(request: Request, services: ServicesDep, who: StewardDep) -> Response:
    """Check an uploaded file; record it only when every row is clean (SPEC §6)."""
    async with request.form() as form:
        return await _import_form(request, services, who, form)


async def _import_form(
    request: Request, services: Services, who: Principal, form: FormData
) -> Response:
    refused = _upload_csrf_refusal(request, form)
    if refused is not None:
        return refused
    kind: Literal["partners", "events"] = "events" if form.get("kind") == "events" else "partners"
    order_text = str(form.get("date_order") or "")
    date_order = DateOrder(order_text) if order_text in tuple(DateOrder) else None
    upload = form.get("file")
    shown: dict[str, Any] = {"kind": kind, "date_order": date_order}
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _page(request, "import.html", who, 422, problem="Choose a file to upload.", **shown)
    filename = Path(upload.filename).name
    raw = await upload.read(MAX_UPLOAD_BYTES + 1)
    try:
        if len(raw) > MAX_UPLOAD_BYTES:
            msg = f"{filename}: is larger than 50 MB; split it, or use pledger import"
            raise ImportFileError(msg)
        table = decode_table(raw, source=filename)
    except ImportFileError as unreadable:
        return _page(request, "import.html", who, 422, problem=str(unreadable), **shown)
    plan, recorded = await services.service.import_table(
        kind, table, recorded_by=who.name, date_order=date_order
    )
    if plan.problems:
        problems = [_problem_row(table, p) for p in plan.problems]
        return _page(
            request,
            "import.html",
            who,
            422,
            problems=problems,
            ambiguous_dates=any(p["ambiguous_date"] for p in problems),
            filename=filename,
            **shown,
        )
    partners = len({r.stream_id for r in recorded})
    done = f"Recorded {len(recorded)} events for {partners} partners."
    again = rerun_summary(plan)
    summary = {
        "filename": filename,
        "text": f"{again}. {done}" if again else done,
        "partners": sorted(plan.partners, key=lambda p: p[1]),
        "earlier": [
            (name, count, day_of(registered, services.settings.zone).isoformat())
            for name, count, registered in plan.earlier
        ],
    }
    return _page(request, "import.html", who, summary=summary, **shown)


def _problem_row(table: Table, problem: RowProblem) -> dict[str, Any]:
    """A problem as the page's table shows it, with the cell's value when it has one."""
    cells = next((row.cells for row in table.rows if row.number == problem.row), {})
    value = problem.column if problem.row == 1 else cells.get(problem.column or "", "")
    ambiguous = ORDER_HINT in problem.message
    message = problem.message.replace(ORDER_HINT, "(under “How the file writes dates” below)")
    return {
        "row": problem.row,
        "column": show_controls(problem.column or ""),
        "value": show_controls(value or ""),
        "message": show_controls(message),
        "ambiguous_date": ambiguous,
    }


@router.get("/import/template/{kind}.csv")
def import_template(kind: str, who: StewardDep) -> Response:
    """A partners or events file's header and two example rows (``pledger import template``)."""
    if kind not in ("partners", "events"):
        raise NotFound(f"There is no {kind!r} file; there are partners and events files.")
    return _csv_download("\ufeff" + template_csv(kind), f"{kind}-example.csv")


@router.get("/export/partners.csv")
def partners_file(services: ServicesDep, who: ReaderDep) -> Response:
    """Every partner in the partners file's shape (``pledger export partners``)."""
    return _csv_download(
        "\ufeff" + "".join(partners_csv_lines(services.ledger)), "partners-import.csv"
    )


def _csv_download(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/docs")
def swagger_ui(request: Request) -> Response:
    return templates.TemplateResponse(request, "docs.html", {"viewer": "swagger"})


@router.get("/redoc")
def redoc(request: Request) -> Response:
    return templates.TemplateResponse(request, "docs.html", {"viewer": "redoc"})


def html_error(request: Request, status: int, detail: str) -> HTMLResponse:
    """An error on a page, as a page (the JSON API answers problem+json instead)."""
    titles = {401: "Please sign in", 403: "Not available to this sign-in", 404: "Not found"}
    who = None
    session_id = request.session.get("sid") if "session" in request.scope else None
    if session_id:
        try:
            who = request.app.state.services.tokens.session_holder(str(session_id))
        except Unauthorized:
            who = None
    return templates.TemplateResponse(
        request,
        "refused.html",
        {
            "who": who,
            "path": request.url.path,
            "csrftoken": _csrf(request) if who else "",
            "title": titles.get(status, "That did not work"),
            "detail": detail,
            "back": "/",
        },
        status_code=status,
    )
