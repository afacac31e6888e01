"""Skills in the store, through the service every front calls: versions, and the bad input refused whole."""

from __future__ import annotations

import base64
import sqlite3
import stat
import zipfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from skill_folders import make_folder, skill_md

from server.core.errors import InvalidRequestError, NotFoundError, ServerError, TooLargeError
from server.core.skills import MAX_INLINE_SKILL_BYTES, SkillFileInput, SkillSummary, invoked_name, skills_prompt
from server.services.skill_delivery import UNLISTABLE, stored
from server.services.skills import SkillService
from server.store.sqlite.store import Store

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store.db")
    yield opened
    opened.close()


@pytest.fixture
def skills(store: Store) -> SkillService:
    return SkillService(store)


def skill_rows(store: Store) -> list[int]:
    """Rows of each skill table, read from the file (not through a method under test)."""
    with closing(sqlite3.connect(store._path)) as db:
        return [
            db.execute(f"select count(*) from {t}").fetchone()[0] for t in ("skills", "skill_versions", "skill_files")
        ]


async def test_a_folder_becomes_version_1_and_the_same_name_again_version_2(
    skills: SkillService, tmp_path: Path
) -> None:
    first = await skills.add_path(make_folder(tmp_path / "a"))
    second = await skills.add_path(make_folder(tmp_path / "b", extra={"reference.md": "more"}))

    assert (first.version, second.version) == (1, 2)
    assert first.skill_id == second.skill_id
    assert first.skill_id.startswith("skill_")
    assert [f.path for f in first.files] == ["SKILL.md", "scripts/fill.sh"]
    assert [f.executable for f in first.files] == [False, True]
    detail = await skills.get("pdf-forms")
    assert detail.latest_version == 2
    assert [v.version for v in detail.versions] == [2, 1]
    assert (await skills.get_version(first.skill_id, 1)).files == first.files


async def test_a_zip_of_a_folder_loses_its_top_folder(skills: SkillService, tmp_path: Path) -> None:
    archive = tmp_path / "skill.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pdf-forms/SKILL.md", skill_md("pdf-forms"))
        info = zipfile.ZipInfo("pdf-forms/scripts/fill.sh")
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        zf.writestr(info, "#!/bin/sh\necho filled\n")

    version = await skills.add_path(archive)

    assert [(f.path, f.executable) for f in version.files] == [("SKILL.md", False), ("scripts/fill.sh", True)]


async def test_a_deleted_versions_number_is_never_given_again(
    skills: SkillService, store: Store, tmp_path: Path
) -> None:
    await skills.add_path(make_folder(tmp_path / "a"))
    second = await skills.add_path(make_folder(tmp_path / "b"))
    await skills.delete("pdf-forms", version=2)
    third = await skills.add_path(make_folder(tmp_path / "c"))

    assert third.version == 3
    assert (await skills.get(second.skill_id)).latest_version == 3
    with pytest.raises(NotFoundError):
        await skills.get_version(second.skill_id, 2)
    await skills.delete("pdf-forms")
    assert skill_rows(store) == [0, 0, 0]


async def test_stored_versions_cannot_be_edited(skills: SkillService, store: Store, tmp_path: Path) -> None:
    await skills.add_path(make_folder(tmp_path / "a"))
    with closing(sqlite3.connect(store._path)) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("update skill_files set content = x'00'")


def bomb(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("SKILL.md", skill_md("bomb"))
        zf.writestr("zeros.bin", b"\0" * (9 * 1024 * 1024))  # ~9 KiB compressed: a ratio of about 1,000
    return path


def many_files(path: Path) -> Path:
    path.mkdir()
    (path / "SKILL.md").write_text(skill_md("many"), encoding="utf-8")
    for i in range(10_000):
        (path / f"f{i}.txt").write_bytes(b"x")
    return path


def no_front_matter(path: Path) -> Path:
    path.mkdir()
    (path / "SKILL.md").write_text("# pdf-forms\n\nname: pdf-forms\n", encoding="utf-8")
    return path


def capital_name(path: Path) -> Path:
    path.mkdir()
    (path / "SKILL.md").write_text(skill_md("PDF-Forms"), encoding="utf-8")
    return path


def case_clash(path: Path) -> Path:
    path = make_folder(path, extra={"Scripts/fill.sh": "echo"})
    return path


def symlink(path: Path) -> Path:
    make_folder(path)
    (path / "passwd").symlink_to("/etc/passwd")
    return path


def no_skill_md(path: Path) -> Path:
    path.mkdir()
    (path / "README.md").write_text(skill_md("x"), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (bomb, TooLargeError, "zip bomb"),
        (many_files, TooLargeError, "at most 1000 files"),
        (no_front_matter, InvalidRequestError, "no front matter"),
        (capital_name, InvalidRequestError, "capital letters"),
        (case_clash, InvalidRequestError, "differ only in case"),
        (symlink, InvalidRequestError, "symlink"),
        (no_skill_md, InvalidRequestError, "needs a SKILL.md"),
    ],
)
async def test_bad_input_is_refused_with_a_clear_error_and_nothing_stored(
    skills: SkillService, store: Store, tmp_path: Path, make: object, error: type[ServerError], words: str
) -> None:
    await skills.add_path(make_folder(tmp_path / "good", name="capital-check"))
    before = skill_rows(store)
    assert callable(make)
    with pytest.raises(error, match=words):
        await skills.add_path(make(tmp_path / "bad" if make is not bomb else tmp_path / "bad.zip"))
    assert skill_rows(store) == before


async def test_a_capital_name_is_refused_even_when_its_lowercase_skill_exists(
    skills: SkillService, store: Store, tmp_path: Path
) -> None:
    await skills.add_path(make_folder(tmp_path / "a", name="pdf-forms"))
    with pytest.raises(InvalidRequestError, match="'pdf-forms' would be"):
        await skills.add_path(capital_name(tmp_path / "b"))
    assert skill_rows(store)[1] == 1


@pytest.mark.parametrize("path", ["../escape.sh", "/etc/x", "a/../../b", "a\\b", "", "."])
async def test_paths_leaving_the_folder_are_refused(skills: SkillService, path: str) -> None:
    files = [SkillFileInput(path="SKILL.md", content=skill_md("x")), SkillFileInput(path=path, content="echo")]
    with pytest.raises(InvalidRequestError):
        await skills.add_contents(files)


async def test_contents_are_bounded_and_base64_is_decoded(skills: SkillService) -> None:
    blob = base64.b64encode(b"\x00\x01binary").decode()
    version = await skills.add_contents(
        [
            SkillFileInput(path="SKILL.md", content=skill_md("inline")),
            SkillFileInput(path="b.bin", content=blob, encoding="base64"),
        ]
    )
    assert {f.path: f.size_bytes for f in version.files} == {"SKILL.md": len(skill_md("inline")), "b.bin": 8}
    big = SkillFileInput(path="big.txt", content="x" * (MAX_INLINE_SKILL_BYTES // 2 + 1))
    big2 = big.model_copy(update={"path": "big2.txt"})
    with pytest.raises(TooLargeError, match="managed-sessions skill add"):
        await skills.add_contents([SkillFileInput(path="SKILL.md", content=skill_md("inline")), big, big2])


async def test_a_page_of_skills_and_its_cursor(skills: SkillService, tmp_path: Path) -> None:
    for name in ("one", "two", "three"):
        await skills.add_path(make_folder(tmp_path / name, name=name))
    first = await skills.page(limit=2)
    rest = await skills.page(limit=2, cursor=first.next_cursor)
    assert [s.name for s in first.skills + rest.skills] == ["three", "two", "one"]
    assert rest.next_cursor is None


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("/pdf-forms fill it", "pdf-forms"),
        ("/pdf-forms", "pdf-forms"),
        ("/pdf-forms\nthe form", "pdf-forms"),
        ("/pdf-forms, please", None),
        ("/ pdf-forms", None),
        ("pdf-forms", None),
        ("/", None),
        ("/Caps", None),
    ],
)
def test_a_message_invokes_a_skill_only_with_slash_and_a_skill_name_first(text: str, name: str | None) -> None:
    assert invoked_name(text) == name


def test_the_system_prompt_lists_each_skill_with_its_path_and_description() -> None:
    listed = skills_prompt([SkillSummary("pdf-forms", "Fills in\n  PDF forms.")])
    assert listed.startswith("# Skills\n")
    assert listed.endswith("- pdf-forms (/mnt/skills/pdf-forms/SKILL.md): Fills in PDF forms.")
    assert skills_prompt([]) == ""


async def test_deleting_a_version_or_a_skill_removes_its_folders_from_the_skill_store(
    store: Store, tmp_path: Path
) -> None:
    store_dir = tmp_path / "skills" / "versions"
    store_dir.mkdir(parents=True)
    skills = SkillService(store, store_dir)
    first = await skills.add_path(make_folder(tmp_path / "a"))
    second = await skills.add_path(make_folder(tmp_path / "b"))
    folders = [stored(store, store_dir, v) for v in (first, second)]
    assert all((f / "scripts" / "fill.sh").is_file() for f in folders)
    assert stat.S_IMODE(folders[0].parent.stat().st_mode) == UNLISTABLE

    await skills.delete(first.skill_id, 1)
    assert not folders[0].exists()
    assert (folders[1] / "SKILL.md").is_file()

    await skills.delete("pdf-forms")
    assert not (store_dir / first.skill_id).exists()


async def test_a_skill_store_folder_that_cannot_be_removed_does_not_fail_the_delete(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    skills = SkillService(store, tmp_path)
    version = await skills.add_path(make_folder(tmp_path / "a"))
    (tmp_path / version.skill_id).write_text("")  # a file where the skill's folder would be: removing it fails

    await skills.delete(version.skill_id)

    assert skill_rows(store) == [0, 0, 0]
    assert "could not remove" in caplog.text
