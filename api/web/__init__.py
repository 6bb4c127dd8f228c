"""The ledger's pages for people: server-rendered, usable without JavaScript, nothing loaded
from another origin (SPEC §8).

Sessions are Starlette's signed cookie (itsdangerous), HttpOnly and SameSite=Strict, Secure
under https; a session holds only the SHA-256 of the token it was opened with, so a token
that stops being valid ends its sessions too. Form POSTs carry a CSRF token checked by
asgi-csrf (double-submit cookie, signed with the same per-ledger secret). Every response
carries a Content-Security-Policy that allows no inline script and no other origin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import fastapi_standalone_docs
from asgi_csrf import asgi_csrf
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.web.pages import CSRF_REFUSAL, CSRF_REFUSAL_TITLE, is_checked_upload, templates
from api.web.pages import router as pages_router

__all__ = ["install_web"]

STATIC = Path(__file__).parent / "static"
DOCS_ASSETS = Path(fastapi_standalone_docs.__path__[0]) / "static"
SESSION_COOKIE = "pledger_session"
SESSION_DAYS = 14

# script-src 'self' only: no inline script anywhere, no other origin (CWE-79 defence in depth).
# Inline style attributes are allowed for Swagger UI and ReDoc, which set them from script.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the Content-Security-Policy and its companions to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((k, v) for k, v in _SECURITY_HEADERS if k not in present),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


class SignedCookies:
    """Sessions and CSRF cookies, signed with the ledger's own secret.

    The secret lives in the ledger's database (shared by every server process), which opens
    when the app starts, after middleware is built; so the two middlewares are built on the
    first request. Under https the cookies are marked Secure.
    """

    def __init__(self, app: ASGIApp, secret: Callable[[Scope], str]) -> None:
        self.app = app
        self.secret = secret
        self._by_scheme: dict[bool, ASGIApp] = {}

    def _build(self, secret: str, secure: bool) -> ASGIApp:
        sessions = SessionMiddleware(
            self.app,
            secret_key=secret,
            session_cookie=SESSION_COOKIE,
            max_age=SESSION_DAYS * 24 * 3600,
            same_site="strict",
            https_only=secure,
        )
        wrapped: Callable[[Scope, Receive, Send], Awaitable[None]] = asgi_csrf(
            sessions,
            signing_secret=secret,
            cookie_samesite="Strict",
            cookie_secure=secure,
            # The JSON API authenticates by Bearer token only, never by cookie: no CSRF there.
            # An upload's form is checked by its page instead (the same double-submit rule):
            # asgi-csrf 0.11 cannot parse multipart bodies with python-multipart >= 0.0.26
            # (simonw/asgi-csrf#38), and older python-multipart has known CVEs.
            skip_if_scope=lambda scope: (
                scope["path"].startswith("/v1/") or is_checked_upload(scope)
            ),
            send_csrf_failed=_csrf_failed,
        )
        return wrapped

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/v1/"):
            # The JSON API authenticates by Bearer token only: it reads no session and needs no
            # CSRF cookie (asgi-csrf would sign a fresh token for every request and discard it).
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https"
        app = self._by_scheme.get(secure)
        if app is None:
            app = self._by_scheme[secure] = self._build(self.secret(scope), secure)
        await app(scope, receive, send)


async def _csrf_failed(_scope: Scope, send: Send, _message_id: int) -> None:
    body = templates.get_template("refused.html").render(
        title=CSRF_REFUSAL_TITLE, detail=CSRF_REFUSAL
    )
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"text/html; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode("utf-8")})


def install_web(app: FastAPI) -> None:
    """Add the pages, their static files, self-hosted API docs, sessions, CSRF and CSP."""
    app.mount("/static/docs", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(pages_router)
    app.add_middleware(
        SignedCookies,
        secret=lambda scope: scope["app"].state.services.tokens.session_secret(),
    )
    app.add_middleware(SecurityHeaders)
