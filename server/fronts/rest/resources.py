"""`/v1/sessions/{id}/resources`: add, list, retrieve and remove a session's `file` resources (repositories are
listed too; they are named at create time)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.core.sessions import AnySessionResource
from server.fronts.rest.common import page, path_id, runtime
from server.fronts.rest.wire import ApiError, endpoint, json_response, read_body
from server.services.file_resources import FileResource

__all__ = ["resource_routes"]


def shown(resource: AnySessionResource) -> dict[str, Any]:
    return resource.model_dump(mode="json")


@endpoint
async def add(request: Request) -> Response:
    body = await read_body(request, FileResource)
    return json_response(shown(await runtime(request).session_files.add(path_id(request, "session_id"), body)))


@endpoint
async def list_resources(request: Request) -> Response:
    listed = await runtime(request).session_files.list_resources(path_id(request, "session_id"))
    return json_response(page([shown(r) for r in listed], None))


@endpoint
async def retrieve(request: Request) -> Response:
    found = await runtime(request).session_files.get(path_id(request, "session_id"), path_id(request, "resource_id"))
    return json_response(shown(found))


@endpoint
async def update(request: Request) -> Response:
    await runtime(request).session_files.get(path_id(request, "session_id"), path_id(request, "resource_id"))
    raise ApiError(
        400,
        "invalid_request_error",
        "this server does not rotate a resource's authorization_token; delete the session's resource and add it "
        "again, or put the token in a vault",
    )


@endpoint
async def delete(request: Request) -> Response:
    deleted = await runtime(request).session_files.delete(
        path_id(request, "session_id"), path_id(request, "resource_id")
    )
    return json_response(deleted)


def resource_routes() -> list[BaseRoute]:
    return [
        Route("/sessions/{session_id}/resources", add, methods=["POST"]),
        Route("/sessions/{session_id}/resources", list_resources, methods=["GET"]),
        Route("/sessions/{session_id}/resources/{resource_id}", retrieve, methods=["GET"]),
        Route("/sessions/{session_id}/resources/{resource_id}", update, methods=["POST"]),
        Route("/sessions/{session_id}/resources/{resource_id}", delete, methods=["DELETE"]),
    ]
