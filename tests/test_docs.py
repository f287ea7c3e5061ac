"""The README documents every command, and what pyproject.toml promises is in the package."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import click

import governance
from governance.cli import main
from governance.retention import SHIPPED_PROFILES

ROOT = Path(__file__).resolve().parent.parent


def command_paths(group: click.Group, prefix: str = "govkit") -> list[str]:
    """``govkit dsar hold add`` and so on, for every command and group below ``group``."""
    found: list[str] = []
    for name, cmd in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        found.append(path)
        if isinstance(cmd, click.Group):
            found += command_paths(cmd, path)
    return found


def test_every_command_is_mentioned_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p for p in command_paths(main) if p not in readme]
    assert not missing, "README.md does not mention: " + ", ".join(missing)


def test_shipped_retention_profiles_are_package_data() -> None:
    package = Path(governance.__file__).resolve().parent
    assert SHIPPED_PROFILES.resolve().is_relative_to(package)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["governance"]
    files = sorted(SHIPPED_PROFILES.glob("*.yaml"))
    assert len(files) == 3
    for f in files:
        relative = f.resolve().relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


def test_the_license_pyproject_names_is_there() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["project"]["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
