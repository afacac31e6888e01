"""The MCP skill tools: list_skills, get_skill, create_skill (from file contents) and delete_skill.

Big skills come in on the host (`managed-sessions skill add PATH`): contents sent here pass through a client's
context, so `create_skill` is bounded by `MAX_INLINE_SKILL_BYTES`.
"""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import Field

from server.core.ids import SkillId
from server.core.skills import MAX_SKILL_FILES, SkillDeleted, SkillDetail, SkillFileInput, SkillList, SkillVersion
from server.fronts.mcp.registry import Registry
from server.fronts.mcp.tools.common import DESTRUCTIVE, READ_ONLY, WRITE, Ctx, Cursor, Limit, Version, reply, runtime

__all__ = ["register_skill_tools"]


def register_skill_tools(mcp: Registry) -> None:
    @mcp.tool(annotations=READ_ONLY)
    async def list_skills(ctx: Ctx, limit: Limit = 20, cursor: Cursor = None) -> Annotated[CallToolResult, SkillList]:
        """List skills, newest first: each one's id, name, description and latest version."""
        page = await runtime(ctx).skills.page(limit, cursor)
        return reply(page, f"{len(page.skills)} skill(s).")

    @mcp.tool(annotations=READ_ONLY)
    async def get_skill(
        ctx: Ctx,
        skill: Annotated[SkillId, Field(description="The skill's id (skill_...) or its name.")],
    ) -> Annotated[CallToolResult, SkillDetail]:
        """Get a skill and all its versions (newest first), each with its files' paths, sizes and sha256."""
        detail = await runtime(ctx).skills.get(skill)
        return reply(detail, f"Skill {detail.name} ({detail.id}), latest version {detail.latest_version}.")

    @mcp.tool(annotations=WRITE)
    async def create_skill(
        ctx: Ctx,
        files: Annotated[
            list[SkillFileInput],
            Field(min_length=1, max_length=MAX_SKILL_FILES, description="The skill's files; one is SKILL.md."),
        ],
    ) -> Annotated[CallToolResult, SkillVersion]:
        """Add a skill from file contents (at most 1 MiB in all), or a new version of the skill of that name.

        SKILL.md opens with YAML front matter: `name` (lowercase letters, digits, hyphens) and `description`
        (when to use it), between two '---' lines; instructions follow. Agents use a skill through
        skills: [{type: 'custom', skill_id, version?}]. Bigger skills: `managed-sessions skill add PATH` on the
        server's host."""
        version = await runtime(ctx).skills.add_contents(files)
        return reply(version, f"Skill {version.name} ({version.skill_id}) is at version {version.version}.")

    @mcp.tool(annotations=DESTRUCTIVE)
    async def delete_skill(
        ctx: Ctx,
        skill: Annotated[SkillId, Field(description="The skill's id (skill_...) or its name.")],
        version: Annotated[Version | None, Field(description="Delete only this version.")] = None,
    ) -> Annotated[CallToolResult, SkillDeleted]:
        """Delete a skill with all its versions, or one version of it (its number is never reused)."""
        deleted = await runtime(ctx).skills.delete(skill, version)
        what = f"version {version} of skill" if version is not None else "skill"
        return reply(deleted, f"Deleted {what} {deleted.id}.")
