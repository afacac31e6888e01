"""What every REST resource module shares: the runtime of a request, path parameters, pages."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from starlette.requests import Request

from server.fronts.rest.wire import QueryModel
from server.services.runtime import Runtime

__all__ = ["PageQuery", "page", "path_id", "runtime"]


def runtime(request: Request) -> Runtime:
    """The runtime the lifespan opened (kept on the app's state)."""
    opened: Runtime = request.app.state.runtime
    return opened


def path_id(request: Request, name: str) -> str:
    value: str = request.path_params[name]
    return value


class PageQuery(QueryModel):
    """`limit` and the opaque `page` cursor a previous page's `next_page` gave."""

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    page: Annotated[str | None, Field(max_length=64)] = None


def page(data: list[Any], next_page: str | None, **more: str | None) -> dict[str, Any]:
    """A list response: `{data, next_page}` (plus `prev_page` where the API has one)."""
    return {"data": data, "next_page": next_page, **more}
