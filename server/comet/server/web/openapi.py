"""The OpenAPI 3.1 document of /api/v1/, built from the API's routes and their rows
in the permission table (so it cannot list an endpoint that is not served)."""

from __future__ import annotations

import inspect
import re
from typing import Any

from comet.server import authorization
from comet.server.web.routes import Route

_ERROR = {
    "description": "an error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def document(routes: list[Route], *, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not route.api:
            continue
        action = route.action
        allowed = sorted(c.value for c in authorization.PERMISSIONS[action])
        doc = inspect.getdoc(route.handler) or ""
        operation: dict[str, Any] = {
            "summary": doc.split("\n")[0],
            "description": f"{doc}\n\nPermission: `{action.value}` ({', '.join(allowed)}).",
            "operationId": f"{route.method.lower()}_{route.handler.__name__}",
            "x-comet-action": action.value,
            "responses": {
                "200": {"description": "done", "content": {"application/json": {}}},
                "400": _ERROR,
                "401": _ERROR,
                "403": _ERROR,
                "404": _ERROR,
            },
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", route.path)
        ]
        if parameters:
            operation["parameters"] = parameters
        if route.method in ("POST", "PUT"):
            operation["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        if authorization.Caller.ANONYMOUS not in authorization.PERMISSIONS[action]:
            operation["security"] = [{"apiKey": []}, {"session": []}]
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Comet Server HTTP API",
            "version": version,
            "description": "Administer a Comet Server. Authenticate with an API key "
            "(`Authorization: Bearer cmk_...`, made with `comet-admin api-key create` or "
            "on the console's API keys page) or a console session cookie (then send the "
            "page's CSRF token in `X-CSRF-Token` with every POST, PUT and DELETE).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "comet_session"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            },
        },
    }
