"""A Pipfile or Pipfile.lock as pipenv reads it: the requirement arguments to install, and the Python it asks for."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from binder_actors.builders import UnsupportedRepository

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def _pipfile_lock_requirements(lock: dict[str, Any]) -> list[str]:
    """Requirement arguments for every locked package, the dev packages included."""
    args: list[str] = []
    for section in ("default", "develop"):
        for name, entry in (lock.get(section) or {}).items():
            args.extend(_pipfile_entry(name, entry))
    return args


def _pipfile_entry(name: str, entry: Any) -> list[str]:
    """Requirement arguments of one Pipfile or Pipfile.lock entry."""
    if isinstance(entry, str):
        return [name if entry.strip() in ("*", "") else f"{name}{entry.strip()}"]
    extras = f"[{','.join(entry['extras'])}]" if entry.get("extras") else ""
    if "path" in entry:
        return ["-e", entry["path"]] if entry.get("editable") else [entry["path"]]
    if "git" in entry:
        ref = f"@{entry['ref']}" if entry.get("ref") else ""
        requirement = f"{name}{extras} @ git+{entry['git']}{ref}"
    elif "file" in entry:
        requirement = f"{name}{extras} @ {entry['file']}"
    else:
        version = entry.get("version", "*")
        requirement = f"{name}{extras}" + ("" if version == "*" else version)
    markers = entry.get("markers")
    return [f"{requirement}; {markers}" if markers else requirement]


def pipfile_plan(config_dir: Path, repo_dir: Path) -> tuple[str | None, list[str], str]:
    lock_path, pipfile_path = config_dir / "Pipfile.lock", config_dir / "Pipfile"
    if lock_path.is_file():
        try:
            lock = json.loads(lock_path.read_text())
        except json.JSONDecodeError as error:
            raise UnsupportedRepository(f"{lock_path.relative_to(repo_dir)} is not valid JSON: {error}") from None
        python = ((lock.get("_meta") or {}).get("requires") or {}).get("python_version")
        return python, _pipfile_lock_requirements(lock), lock_path.name
    try:
        pipfile = tomllib.loads(pipfile_path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UnsupportedRepository(f"{pipfile_path.relative_to(repo_dir)} is not valid TOML: {error}") from None
    args: list[str] = []
    for section in ("packages", "dev-packages"):
        for name, entry in (pipfile.get(section) or {}).items():
            args.extend(_pipfile_entry(name, entry))
    python = (pipfile.get("requires") or {}).get("python_version")
    return python, args, pipfile_path.name
