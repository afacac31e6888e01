"""Skill folders for tests: a SKILL.md with front matter, and a folder with a script beside it."""

from __future__ import annotations

from pathlib import Path


def skill_md(name: str, description: str = "Fills in PDF forms.") -> str:
    return f"---\nname: {name}\ndescription: {description}\n---\n\n# {name}\n\nRun scripts/fill.sh.\n"


def make_folder(root: Path, name: str = "pdf-forms", extra: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "SKILL.md").write_text(skill_md(name), encoding="utf-8")
    (root / "scripts").mkdir()
    script = root / "scripts" / "fill.sh"
    script.write_text("#!/bin/sh\necho filled\n", encoding="utf-8")
    script.chmod(0o755)
    for path, text in (extra or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    return root
