"""requirements.lock against pyproject.toml: the check scripts/test.sh runs."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _check_lock():
    spec = importlib.util.spec_from_file_location("check_lock", ROOT / "scripts" / "check_lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lock_satisfies_pyproject():
    check = _check_lock()
    requirements = check.required(ROOT / "pyproject.toml")
    names = {r.name for r in requirements}
    # the extras are followed: napari from `napari`, distributed through dask's extra, pytest
    assert {"napari", "torch", "pytest", "ome-zarr"} <= names
    assert any(r.name == "dask" and "distributed" in r.extras for r in requirements)
    assert check.problems(requirements, check.read_lock(ROOT / "requirements.lock")) == []


def test_a_disagreeing_lock_is_reported(tmp_path):
    check = _check_lock()
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==1.26.4\n    # via napari-sgi\ntorch==2.13.0+cpu\n")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "napari-sgi"\ndependencies = ["numpy>=2.4", "torch>=2.13", "tqdm"]\n'
        '[project.optional-dependencies]\nall = []\ntesting = ["napari-sgi[all]"]\n'
    )
    found = check.problems(check.required(pyproject), check.read_lock(lock))
    assert found == ["numpy>=2.4: the lock has 1.26.4", "tqdm is not in the lock"]
    assert check.main([str(pyproject), str(lock)]) == 1
