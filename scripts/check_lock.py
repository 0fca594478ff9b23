"""Fails when requirements.lock and pyproject.toml disagree.

Every requirement of the set-up the README installs (napari-sgi's dependencies and its ``all`` and
``testing`` extras, followed through the extras they name) must be pinned in the lock with ``==``
at a version its specifier admits (what the pinned packages need in turn, `pip check` checks once
they are installed). Run by
scripts/test.sh and scripts/lock.sh; refresh the lock with ``bash scripts/lock.sh``.

Usage: ``python scripts/check_lock.py [pyproject.toml] [requirements.lock]``
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

INSTALLED_EXTRAS = ("all", "testing")  # what scripts/install.sh installs


def read_lock(path: Path) -> dict[str, Version]:
    """``{canonical name: version}`` of every ``name==version`` line of a pip-compile lock."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "==" not in line or line.startswith("-"):
            raise SystemExit(f"{path}:{number}: not an exact pin: {line!r}")
        name, version = line.split("==", 1)
        pins[canonicalize_name(name)] = Version(version.split(";")[0].strip())
    return pins


def required(pyproject: Path) -> list[Requirement]:
    """The project's requirements for the installed extras, self-references expanded."""
    project = tomllib.loads(pyproject.read_text())["project"]
    own = canonicalize_name(project["name"])
    extras = project.get("optional-dependencies", {})
    requirements = [Requirement(r) for r in project["dependencies"]]
    todo, seen = list(INSTALLED_EXTRAS), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in extras[extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == own:
                todo.extend(requirement.extras)
            else:
                requirements.append(requirement)
    return requirements


def problems(requirements: list[Requirement], pins: dict[str, Version]) -> list[str]:
    """What the lock gets wrong for these requirements (empty when it agrees)."""
    found = []
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            found.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(version, prereleases=True):
            found.append(f"{requirement}: the lock has {version}")
    return found


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    pyproject = Path(argv[0]) if argv else root / "pyproject.toml"
    lock = Path(argv[1]) if len(argv) > 1 else root / "requirements.lock"
    found = problems(required(pyproject), read_lock(lock))
    for problem in found:
        print(f"requirements.lock disagrees with pyproject.toml: {problem}", file=sys.stderr)
    if found:
        print("refresh it with: bash scripts/lock.sh", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
