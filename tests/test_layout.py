"""The package's shape: stages import one way, and reading a file never loads the encoder."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "napari_sgi"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """napari_sgi modules that ``path`` imports anywhere (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def test_no_import_circle():
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph = {name: _imports(path, modules) - {name} for name, path in paths.items()}
    graph = {
        name: {d for d in deps if not name.startswith(d + ".")} for name, deps in graph.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep) :] + [dep] if dep in path else [name, dep]
                raise AssertionError(f"import circle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_importing_the_package_stays_light():
    heavy = ("torch", "napari", "qtpy", "dask")
    code = f"import sys, napari_sgi; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


ENCODING = (
    "napari_sgi.encode",
    "napari_sgi.core.fit",
    "napari_sgi.core.refine",
    "napari_sgi.core.schedule",
)


def test_reading_loads_no_encoder(tmp_path):
    from napari_sgi.encode.pipeline import compress

    path = tmp_path / "a.sgi"
    image = (np.random.default_rng(0).random((600, 40)) * 255).astype(np.uint8)
    compress(image, path, preset="fast", iterations=4, region_size=256, region_margin=32)
    # Every level, rendered as napari reads it. Not through dask's compute(): dask itself imports
    # distributed there whenever it is installed (to look for a client), whatever we load.
    code = f"""
import sys
from napari_sgi import open_sgi
image = open_sgi({str(path)!r})
for level in range(len(image.levels)):
    image.file.render_slice(0, level)
loaded = [m for m in sys.modules if m == "distributed" or m == "torchac"
          or m.startswith({ENCODING!r})]
print(sorted(loaded))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
