"""Record a benchmark's figures in docs/benchmarks.md, between markers of its own section."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine_description() -> str:
    """One line naming the CPU, core count, memory and torch version of this machine."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{mem_kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        memory = "unknown memory"
    import torch

    return f"{cpu}, {os.cpu_count()} cores, {memory}, torch {torch.__version__}"


def git_revision(checkout: str | Path | None = None) -> str:
    """The short revision of ``checkout`` (default: the working directory's repository)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=checkout,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md with ``markdown``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else f"{text.rstrip()}\n\n{block}\n"
    )
    path.write_text(text)


def read_rows(path: Path) -> list[dict]:
    """The rows of a JSON-lines results file (none when it does not exist yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_row(path: Path, row: dict) -> None:
    """Append one row to a JSON-lines results file, as soon as it is measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as out:
        out.write(json.dumps(row) + "\n")
