"""Skills: versioned folders of know-how (a `SKILL.md` plus scripts and references) an agent loads on demand.

The format is the open Agent Skills one: `SKILL.md` opens with YAML front matter holding `name` (lowercase
letters, digits, hyphens) and `description`, then instructions. A skill is identified by its name; adding a
folder whose name exists makes that skill's next version, and versions are immutable.

Every rule about what a skill may hold is checked here, by `check_skill`, whichever door the files came in by
(a folder or zip on the host, file contents over MCP or REST): one place, so the doors cannot drift apart.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from server.core.errors import InvalidRequestError, TooLargeError

__all__ = [
    "MAX_INLINE_SKILL_BYTES",
    "MAX_SKILL_BYTES",
    "MAX_SKILL_FILES",
    "MAX_SKILL_FILE_BYTES",
    "SKILLS_ROOT",
    "SKILL_FILE",
    "CheckedSkill",
    "InvokedSkill",
    "Skill",
    "SkillDeleted",
    "SkillDetail",
    "SkillFile",
    "SkillFileInput",
    "SkillList",
    "SkillSource",
    "SkillSummary",
    "SkillVersion",
    "SkillVersionList",
    "check_path",
    "check_skill",
    "common_folder",
    "front_matter",
    "invoked_name",
    "skills_prompt",
]

SKILL_FILE = "SKILL.md"
SKILLS_ROOT = "/mnt/skills"
"""Where a session's skills are, one folder per skill name, read-only."""

MAX_SKILL_FILES = 1_000
"""A skill is instructions and a few scripts; a thousand files is far past any real one and bounds the work."""
MAX_SKILL_FILE_BYTES = 10 * 1024 * 1024
MAX_SKILL_BYTES = 30 * 1024 * 1024
"""The whole of one version, as the hosted Skills API bounds an upload; every session's sandbox gets a copy."""
MAX_INLINE_SKILL_BYTES = 1024 * 1024
"""A skill sent as file contents (MCP) passes through a client's, often a model's, context: 1 MiB of text is
already ~250,000 tokens. Bigger skills are added from the host with `managed-sessions skill add`."""
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 1_024
"""The Agent Skills format's limits: the description goes into every system prompt of a session using it."""
MAX_PATH_CHARS = 512

_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_UNSAFE_PATH_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


class SkillFile(BaseModel):
    """One file of a skill version (its bytes are kept once per version by the store)."""

    path: str = Field(description="Relative to the skill's folder, '/'-separated.")
    size_bytes: int
    sha256: str
    executable: bool = False


class SkillVersion(BaseModel):
    """One immutable version of a skill."""

    type: Literal["skill_version"] = "skill_version"
    skill_id: str
    version: int = Field(description="1 for the first version, then +1 for each added.")
    name: str
    description: str
    files: list[SkillFile]
    size_bytes: int
    created_at: str


class Skill(BaseModel):
    """A skill and its latest version's name and description."""

    type: Literal["skill"] = "skill"
    id: str = Field(description="skill_ id.")
    name: str
    description: str
    latest_version: int
    created_at: str
    updated_at: str


class SkillList(BaseModel):
    skills: list[Skill]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class SkillVersionList(BaseModel):
    versions: list[SkillVersion]


@dataclass(frozen=True)
class SkillSource:
    """One file as it came in, before any rule was checked."""

    path: str
    content: bytes
    executable: bool = False


@dataclass(frozen=True)
class CheckedSkill:
    """Files that passed every rule, with the name and description from `SKILL.md`."""

    name: str
    description: str
    files: tuple[SkillSource, ...]

    def listing(self) -> list[SkillFile]:
        return [
            SkillFile(
                path=f.path,
                size_bytes=len(f.content),
                sha256=hashlib.sha256(f.content).hexdigest(),
                executable=f.executable,
            )
            for f in self.files
        ]


def check_skill(sources: Sequence[SkillSource]) -> CheckedSkill:
    """Checks a skill's files; raises `InvalidRequestError` or `TooLargeError` naming the first problem."""
    if len(sources) > MAX_SKILL_FILES:
        raise TooLargeError(f"a skill holds at most {MAX_SKILL_FILES} files; this one has {len(sources)}")
    files = tuple(sorted((_checked_file(f) for f in sources), key=lambda f: f.path))
    _refuse_clashes(files)
    total = sum(len(f.content) for f in files)
    if total > MAX_SKILL_BYTES:
        raise TooLargeError(f"a skill holds at most {MAX_SKILL_BYTES} bytes in all; this one has {total}")
    skill_md = next((f for f in files if f.path == SKILL_FILE), None)
    if skill_md is None:
        raise InvalidRequestError(
            f"a skill needs a {SKILL_FILE} at its top level (found: {_sample(files)}); "
            "it opens with front matter holding `name` and `description`"
        )
    name, description = front_matter(skill_md.content)
    return CheckedSkill(name=name, description=description, files=files)


def check_path(path: str) -> str:
    """A file's path inside its skill, normalised; refused when it is absolute, leaves the folder or is odd."""
    if not path or len(path) > MAX_PATH_CHARS or _UNSAFE_PATH_CHARS.search(path):
        raise InvalidRequestError(
            f"file path {path[:MAX_PATH_CHARS]!r} is not allowed: use 1-{MAX_PATH_CHARS} characters, '/' between "
            "folders, no backslashes or control characters"
        )
    normal = posixpath.normpath(path)
    if path.startswith("/") or normal == "." or normal.startswith("../") or normal == "..":
        raise InvalidRequestError(f"file path {path!r} leaves the skill's folder; use a path relative to it")
    return normal


def _checked_file(source: SkillSource) -> SkillSource:
    if len(source.content) > MAX_SKILL_FILE_BYTES:
        raise TooLargeError(
            f"file {source.path!r} is {len(source.content)} bytes; a skill's file holds at most {MAX_SKILL_FILE_BYTES}"
        )
    return SkillSource(check_path(source.path), source.content, source.executable)


def _refuse_clashes(files: Sequence[SkillSource]) -> None:
    """Two paths equal but for case would be one file on a case-insensitive disk, and a file cannot also be a
    folder; both are refused rather than leaving which one wins to the file system."""
    seen: dict[str, str] = {}
    for f in files:
        key = f.path.casefold()
        if key in seen:
            raise InvalidRequestError(f"files {seen[key]!r} and {f.path!r} differ only in case; rename one")
        seen[key] = f.path
    for f in files:
        parent = posixpath.dirname(f.path)
        while parent:
            if parent.casefold() in seen:
                raise InvalidRequestError(f"{seen[parent.casefold()]!r} is a file, so it cannot hold {f.path!r}")
            parent = posixpath.dirname(parent)


def front_matter(content: bytes) -> tuple[str, str]:
    """The `name` and `description` of a `SKILL.md`'s YAML front matter (between two `---` lines at its top)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"{SKILL_FILE} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    lines = text.splitlines()
    end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
    if not lines or lines[0].strip() != "---" or end is None:
        raise InvalidRequestError(
            f"{SKILL_FILE} has no front matter: it must open with a '---' line, then `name: ...` and "
            "`description: ...`, then a closing '---' line"
        )
    import yaml  # here, not at the top: a server that never reads a skill's front matter never pays for it

    try:
        fields = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as exc:
        raise InvalidRequestError(f"{SKILL_FILE}'s front matter is not valid YAML: {exc}") from exc
    if not isinstance(fields, dict):
        raise InvalidRequestError(f"{SKILL_FILE}'s front matter must be a mapping with `name` and `description`")
    return _checked_name(fields.get("name")), _checked_description(fields.get("description"))


def _checked_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{SKILL_FILE}'s front matter needs a `name` (a string); found {name!r}")
    if _NAME.match(name.lower()) and not _NAME.match(name):
        raise InvalidRequestError(
            f"skill name {name!r} has capital letters; skill names are lowercase, and {name.lower()!r} would be "
            "another skill (or that skill's next version, if it exists): change the name in the front matter"
        )
    if len(name) > MAX_NAME_CHARS or not _NAME.match(name):
        raise InvalidRequestError(
            f"skill name {name!r} is not allowed: use 1-{MAX_NAME_CHARS} lowercase letters, digits and single "
            "hyphens (such as 'pdf-forms')"
        )
    return name


def _checked_description(description: object) -> str:
    if not isinstance(description, str) or not description.strip():
        raise InvalidRequestError(f"{SKILL_FILE}'s front matter needs a `description` (a non-empty string)")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidRequestError(
            f"the skill's description has {len(description)} characters; at most {MAX_DESCRIPTION_CHARS}"
        )
    return description.strip()


def _sample(files: Sequence[SkillSource]) -> str:
    names = [f.path for f in files[:5]]
    return ", ".join(repr(n) for n in names) + (", ..." if len(files) > 5 else "") if names else "no files"


class SkillFileInput(BaseModel):
    """A file of a skill sent as contents (MCP `create_skill`)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(max_length=MAX_PATH_CHARS, description="Relative to the skill's folder, e.g. 'SKILL.md'.")
    content: str = Field(
        max_length=(MAX_INLINE_SKILL_BYTES + 2) // 3 * 4,
        description="The file's text, or its bytes in base64 when `encoding` is 'base64'.",
    )
    encoding: Literal["utf-8", "base64"] = "utf-8"
    executable: bool = Field(default=False, description="Whether the file is a script run as `./path`.")


class SkillDetail(Skill):
    """A skill with all its versions, newest first."""

    versions: list[SkillVersion]


class SkillDeleted(BaseModel):
    id: str
    type: Literal["skill_deleted"] = "skill_deleted"
    version: int | None = Field(default=None, description="The version deleted; null when the whole skill was.")


@dataclass(frozen=True)
class SkillSummary:
    """What a session's system prompt says of one of its skills."""

    name: str
    description: str

    @property
    def path(self) -> str:
        return f"{SKILLS_ROOT}/{self.name}"


class InvokedSkill(BaseModel):
    """The skill a user message invoked with `/name`: its SKILL.md goes into that turn, and stays in the log."""

    skill_id: str
    version: int
    name: str
    instructions: str = Field(description="The version's SKILL.md, as the model was given it.")


def skills_prompt(skills: Sequence[SkillSummary]) -> str:
    """The part of a system prompt that lists a session's skills (empty when it has none)."""
    if not skills:
        return ""
    lines = [
        "# Skills",
        "",
        "You have skills: folders of instructions, scripts and references, read-only in the sandbox. When a task "
        "matches a skill's description, read its SKILL.md with the `read` tool first and follow it; read its other "
        "files only as SKILL.md says.",
        "",
    ]
    lines += [f"- {s.name} ({s.path}/{SKILL_FILE}): {' '.join(s.description.split())}" for s in skills]
    return "\n".join(lines)


def invoked_name(text: str) -> str | None:
    """The skill name a message asks for by starting with `/name` (then a space, a newline or its end)."""
    if not text.startswith("/"):
        return None
    word = text[1:].split(maxsplit=1)[0] if text[1:].strip() else ""
    return word if word and _NAME.match(word) and text[1:].startswith(word) else None


def common_folder(names: list[str]) -> str:
    """The one top folder every path is in (`folder/`, with SKILL.md in it), or "": a zip of a folder, or an upload
    of one, holds `folder/SKILL.md`..., and that folder is dropped so paths are the skill's own."""
    if SKILL_FILE in names or not names:
        return ""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) == 1 and all("/" in name for name in names):
        return tops.pop() + "/"
    return ""
