"""The Managed Agents REST API at `/v1`, over the same services as the MCP tools.

Each module is one resource: it parses the request (`wire.read_body`, `wire.read_query`), calls one service and
shapes the answer as the hosted API does; `wire.endpoint` turns every failure into the API's error body.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from server.fronts.rest.agents import agent_routes
from server.fronts.rest.files import file_routes
from server.fronts.rest.resources import resource_routes

__all__ = ["rest_routes"]


def rest_routes() -> list[BaseRoute]:
    """Every `/v1` route, relative to `/v1`."""
    return [*agent_routes(), *file_routes(), *resource_routes()]
