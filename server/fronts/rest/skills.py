"""`/v1/skills`: create (multipart files), retrieve, list, delete; `/v1/skills/{id}/versions[/{version}]`: create,
list, retrieve, delete; `/v1/skills/{id}/versions/{version}/content`: the version as a zip download.

A skill here is named by its SKILL.md (`display_name` is that name; another one is refused rather than kept and
ignored), and a version's id is its number as a string ('1', '2', ...), which is also what an agent's
`skills[].version` pins. Creating a skill whose name exists adds that skill's next version. Only custom skills
exist: listing `source=anthropic` gives none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from pydantic import Field
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from server.core.skills import (
    MAX_SKILL_BYTES,
    MAX_SKILL_FILES,
    SKILL_FILE,
    Skill,
    SkillSource,
    SkillVersion,
    front_matter,
)
from server.fronts.rest.common import PageQuery, page, path_id, runtime
from server.fronts.rest.files import MULTIPART_OVERHEAD_BYTES
from server.fronts.rest.wire import ApiError, QueryModel, endpoint, json_response, read_query

__all__ = ["skill_routes"]

_FILE_FIELDS = ("files", "files[]")
_MAX_BODY_BYTES = MAX_SKILL_BYTES + MULTIPART_OVERHEAD_BYTES
Message = MutableMapping[str, Any]


class SkillListQuery(PageQuery):
    source: Annotated[str | None, Field(max_length=32)] = None


class VersionListQuery(QueryModel):
    limit: Annotated[int, Field(ge=1, le=1000)] = 20
    page: Annotated[str | None, Field(max_length=12, pattern=r"^[1-9][0-9]*$")] = None


def shown(skill: Skill) -> dict[str, Any]:
    return {
        "type": "skill",
        "id": skill.id,
        "display_name": skill.name,
        "description": skill.description,
        "latest_version_id": str(skill.latest_version),
        "source": "custom",
        "created_at": skill.created_at,
        "updated_at": skill.updated_at,
    }


def shown_version(version: SkillVersion) -> dict[str, Any]:
    files = [f.model_dump(mode="json") for f in version.files]
    return {
        "type": "skill_version",
        "id": str(version.version),
        "skill_id": version.skill_id,
        "name": version.name,
        "description": version.description,
        "created_at": version.created_at,
        "version": version.version,
        "files": files,
        "size_bytes": version.size_bytes,
    }


async def _uploaded(request: Request) -> list[SkillSource]:
    """The multipart `files` parts (each part's filename is its path), bounded while they are read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_BODY_BYTES:
        raise _too_large()
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "invalid_request_error", "send the skill's files as multipart/form-data parts 'files'")
    sources = []
    request = Request(request.scope, _capped(request.receive))
    async with request.form(max_files=MAX_SKILL_FILES, max_fields=8) as form:
        display_name = form.get("display_name")
        for key, part in form.multi_items():
            if key in _FILE_FIELDS or key.startswith("files["):
                if not isinstance(part, UploadFile) or not part.filename:
                    raise ApiError(400, "invalid_request_error", f"part {key!r} must be a file with a filename")
                sources.append(SkillSource(part.filename, await part.read()))
    if not sources:
        raise ApiError(400, "invalid_request_error", "the multipart body needs file parts named 'files'")
    if isinstance(display_name, str) and display_name:
        _check_display_name(display_name, sources)
    return sources


def _capped(receive: Callable[[], Awaitable[Message]]) -> Callable[[], Awaitable[Message]]:
    """The body stream, failing with 413 past the limit (a body without a Content-Length, or one that lies)."""
    seen = 0

    async def capped_receive() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > _MAX_BODY_BYTES:
            raise _too_large()
        return message

    return capped_receive


def _too_large() -> ApiError:
    return ApiError(
        413,
        "request_too_large",
        f"a skill holds at most {MAX_SKILL_BYTES} bytes in all; nothing was stored",
    )


def _check_display_name(display_name: str, sources: list[SkillSource]) -> None:
    skill_md = next((s for s in sources if s.path.rsplit("/", 1)[-1] == SKILL_FILE), None)
    if skill_md is not None and front_matter(skill_md.content)[0] != display_name:
        raise ApiError(
            400,
            "invalid_request_error",
            "display_name: a skill here is named by its SKILL.md's `name`; omit display_name or make it that name",
        )


@endpoint
async def create(request: Request) -> Response:
    version = await runtime(request).skills.add_upload(await _uploaded(request))
    return json_response(shown(await runtime(request).skills.get(version.skill_id)))


@endpoint
async def retrieve(request: Request) -> Response:
    return json_response(shown(await runtime(request).skills.get(path_id(request, "skill_id"))))


@endpoint
async def list_skills(request: Request) -> Response:
    query = read_query(request, SkillListQuery)
    if query.source not in (None, "custom"):
        return json_response(page([], None))  # this server has custom skills only
    listed = await runtime(request).skills.page(query.limit, query.page)
    return json_response(page([shown(s) for s in listed.skills], listed.next_cursor))


@endpoint
async def delete(request: Request) -> Response:
    deleted = await runtime(request).skills.delete(path_id(request, "skill_id"))
    return json_response({"id": deleted.id, "type": "skill_deleted"})


@endpoint
async def create_version(request: Request) -> Response:
    skill = path_id(request, "skill_id")
    return json_response(shown_version(await runtime(request).skills.add_upload(await _uploaded(request), skill=skill)))


@endpoint
async def list_versions(request: Request) -> Response:
    query = read_query(request, VersionListQuery)
    versions = await runtime(request).skills.versions(path_id(request, "skill_id"))
    if query.page is not None:
        versions = [v for v in versions if v.version < int(query.page)]
    more = len(versions) > query.limit
    shown_page = versions[: query.limit]
    return json_response(page([shown_version(v) for v in shown_page], str(shown_page[-1].version) if more else None))


def _version(request: Request) -> int:
    value = path_id(request, "version")
    if not value.isdigit() or not 1 <= int(value) <= 2**31 - 1:
        raise ApiError(400, "invalid_request_error", f"version {value!r} is not a version id such as '1'")
    return int(value)


@endpoint
async def retrieve_version(request: Request) -> Response:
    skills = runtime(request).skills
    return json_response(shown_version(await skills.get_version(path_id(request, "skill_id"), _version(request))))


@endpoint
async def download_version(request: Request) -> Response:
    version, archive = await runtime(request).skills.archive(path_id(request, "skill_id"), _version(request))
    filename = f"{version.name}-{version.version}.zip"
    return Response(
        archive, media_type="application/zip", headers={"content-disposition": f'attachment; filename="{filename}"'}
    )


@endpoint
async def delete_version(request: Request) -> Response:
    version = _version(request)
    await runtime(request).skills.delete(path_id(request, "skill_id"), version)
    return json_response({"id": str(version), "type": "skill_version_deleted"})


def skill_routes() -> list[BaseRoute]:
    return [
        Route("/skills", create, methods=["POST"]),
        Route("/skills", list_skills, methods=["GET"]),
        Route("/skills/{skill_id}", retrieve, methods=["GET"]),
        Route("/skills/{skill_id}", delete, methods=["DELETE"]),
        Route("/skills/{skill_id}/versions", create_version, methods=["POST"]),
        Route("/skills/{skill_id}/versions", list_versions, methods=["GET"]),
        Route("/skills/{skill_id}/versions/{version}", retrieve_version, methods=["GET"]),
        Route("/skills/{skill_id}/versions/{version}", delete_version, methods=["DELETE"]),
        Route("/skills/{skill_id}/versions/{version}/content", download_version, methods=["GET"]),
    ]
