"""A route of the console or API, and the table-checked endpoint that serves it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from comet.server import authorization
from comet.server.errors import PermissionDeniedError
from comet.server.web.access import Visitor

Handler = Callable[[Request, Visitor], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    api: bool  # JSON errors (True) or pages (False)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def action(self) -> authorization.Action:
        """Its row in ``authorization.HTTP_ACTIONS``; a route with none is refused."""
        try:
            return authorization.HTTP_ACTIONS[self.key]
        except KeyError:
            raise PermissionDeniedError(
                f"{self.key} has no row in the permission table, so nobody may call it"
            ) from None
