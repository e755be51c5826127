"""Builds the console's ASGI app: every route from the API and the pages, each
behind the permission table, plus the static files, security headers on every
response, and the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.routing import Route as StarletteRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from comet.server.errors import ServerError
from comet.server.notify.email import size_text
from comet.server.web import openapi
from comet.server.web.access import Access, Visitor
from comet.server.web.api import PREFIX, Api
from comet.server.web.console import Console, role_name
from comet.server.web.errors import error_response
from comet.server.web.pages import Pages
from comet.server.web.routes import Route
from comet.server.web.session_cookie import SESSION_COOKIE

HERE = Path(__file__).parent
STATIC = HERE / "static"
# No inline script or style anywhere: the pages load /static only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


@dataclass(frozen=True)
class WebOptions:
    # Cookies get the Secure flag (set when the console is served over TLS, or
    # behind a TLS-terminating proxy).
    secure_cookies: bool = False
    idle_timeout: timedelta = timedelta(minutes=30)
    version: str = "0.1.0"
    # How often live job progress (Server-Sent Events) looks at the job.
    live_every: float = 1.0


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["role_name"] = role_name
    env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M:%S UTC") if d else "—"
    env.filters["size"] = size_text
    return env


def _endpoint(route: Route, access: Access, pages: Pages, secure: bool) -> StarletteRoute:
    action = route.action  # raises for a route with no row: the app is not built

    async def endpoint(request: Request) -> Response:
        visitor: Visitor | None = None
        try:
            visitor = await access.authorize(request, action, route=route.key)
            response = await route.handler(request, visitor)
        except ServerError as e:
            if not route.api and visitor is None:
                visitor = await _signed_in(access, request)  # for the page's header
            response = error_response(e) if route.api else pages.error_page(request, visitor, e)
            signed_out = visitor is None or visitor.principal is None
            if signed_out and e.code in ("unauthenticated", "unknown_credential") and not route.api:
                response.delete_cookie(SESSION_COOKIE)
        already = any(
            v.startswith(SESSION_COOKIE + "=") for v in response.headers.getlist("set-cookie")
        )  # signed in or out by this very request
        if visitor is not None and visitor.renew_cookie and not already:
            response.set_cookie(
                SESSION_COOKIE, visitor.renew_cookie, httponly=True, secure=secure,
                samesite="strict",
            )  # fmt: skip
        return response

    return StarletteRoute(route.path, endpoint, methods=[route.method])


async def _signed_in(access: Access, request: Request) -> Visitor | None:
    try:
        return await access.visitor(request)
    except ServerError:
        return None


def build_app(console: Console, access: Access, options: WebOptions) -> Starlette:
    env = templates()
    pages = Pages(
        console, access, env, secure=options.secure_cookies, live_every=options.live_every
    )
    api = Api(console, access.source)
    table = api.routes() + pages.routes()
    spec = openapi.document(table, version=options.version)

    async def openapi_json(request: Request, visitor: Visitor) -> Response:
        """The OpenAPI document of this API."""
        return JSONResponse(spec)

    routes: list[BaseRoute] = [_endpoint(r, access, pages, options.secure_cookies) for r in table]
    doc_route = Route("GET", PREFIX + "/openapi.json", openapi_json, api=True)
    routes.append(_endpoint(doc_route, access, pages, options.secure_cookies))
    routes.append(Mount("/static", app=StaticFiles(directory=STATIC), name="static"))
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
