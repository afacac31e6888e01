"""The Managed Agents REST API at `/v1`, over the same services as the MCP tools.

Each module is one resource: it parses the request (`wire.read_body`, `wire.read_query`), calls one service and
shapes the answer as the hosted API does; `wire.endpoint` turns every failure into the API's error body.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import BaseRoute, Mount, Router

from server.fronts.rest.agents import agent_routes
from server.fronts.rest.environments import environment_routes
from server.fronts.rest.events import event_routes
from server.fronts.rest.files import file_routes
from server.fronts.rest.resources import resource_routes
from server.fronts.rest.sessions import session_routes
from server.fronts.rest.skills import skill_routes
from server.fronts.rest.stream import stream_routes
from server.fronts.rest.vaults import vault_routes
from server.fronts.rest.wire import http_error

__all__ = ["rest_mount", "rest_routes"]


def rest_routes() -> list[BaseRoute]:
    """Every `/v1` route, relative to `/v1`."""
    return [
        *agent_routes(),
        *environment_routes(),
        *session_routes(),
        *event_routes(),
        *stream_routes(),
        *vault_routes(),
        *file_routes(),
        *resource_routes(),
        *skill_routes(),
    ]


def rest_mount() -> Mount:
    """`/v1`, where an unknown route or method also answers the API's error body."""
    router = Router(routes=rest_routes())
    return Mount("/v1", app=ExceptionMiddleware(router, handlers={HTTPException: http_error}))
