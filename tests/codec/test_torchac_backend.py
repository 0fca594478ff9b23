"""torchac's loader: a build folder per environment, the build log kept off the terminal."""

from __future__ import annotations

import os
import subprocess
import sys

from napari_sgi.codec import torchac_backend
from napari_sgi.codec.torchac_backend import extensions_dir, load_torchac, quiet_fds


def test_extensions_dir_is_per_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    here = extensions_dir()
    assert here.startswith(str(tmp_path / "napari-sgi" / "torch_extensions"))
    monkeypatch.setattr(sys, "prefix", sys.prefix + "-other")
    assert extensions_dir() != here


def test_quiet_fds_catches_what_subprocesses_write(capfd):
    with quiet_fds() as log:
        subprocess.run(
            [sys.executable, "-c", "import os; os.write(1, b'out'); os.write(2, b'err')"]
        )
        caught = log()
    print("after")
    assert "out" in caught and "err" in caught
    assert capfd.readouterr().out == "after\n"


def test_torchac_loads_once_into_the_environments_folder():
    assert load_torchac() is load_torchac() is torchac_backend._torchac
    assert os.environ["TORCH_EXTENSIONS_DIR"]
