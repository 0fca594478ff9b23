import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_sgi.cli import main

DATA = Path(__file__).parent / "data"
FAST = ["--preset", "fast", "--iterations", "12", "--levels", "2", "--density", "0.2", "--k", "3"]


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_sgi.cli", *args], capture_output=True, text=True
    )


def test_fit_json(tmp_path, capsys):
    np.save(
        tmp_path / "image.npy", (np.random.default_rng(0).random((24, 20)) * 900).astype(np.uint16)
    )
    assert main(["fit", str(tmp_path / "image.npy"), "--json", *FAST]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"psnr", "ssim", "gaussians", "seeds", "iterations", "seconds"} <= set(summary)
    assert summary["iterations"] == 12 and summary["gaussians"] == 3 * summary["seeds"]
    assert summary["steps_run"] == 12  # too short a fit for a window of the early stop
    assert main(["fit", str(tmp_path / "image.npy"), "--json", "--settle", "0", *FAST]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["settle"] == 0


def test_compress_info_decompress(tmp_path, capsys, ihc_crop):
    from PIL import Image

    Image.fromarray(ihc_crop).save(tmp_path / "ihc.png")
    out = tmp_path / "ihc.sgi"
    assert main(["compress", str(tmp_path / "ihc.png"), "-o", str(out), "--json", *FAST]) == 0
    compressed = json.loads(capsys.readouterr().out)
    assert {"bytes", "bpp", "psnr", "ssim", "seconds"} <= set(compressed)
    assert compressed["bytes"] == out.stat().st_size
    assert compressed["bpp"] == pytest.approx(8 * out.stat().st_size / (64 * 64), rel=1e-4)

    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sum(info["sections"].values()) + sum(info["overhead"].values()) == out.stat().st_size
    assert info["header"]["layout"]["axes"] == "YXS"
    assert info["header"]["fit"]["preset"] == "fast"
    assert main(["info", str(out)]) == 0
    assert "  preset fast\n" in capsys.readouterr().out

    for suffix in (".png", ".tif", ".npy"):
        target = tmp_path / f"decoded{suffix}"
        assert main(["decompress", str(out), "-o", str(target)]) == 0
        assert target.exists()
    decoded = np.load(tmp_path / "decoded.npy")
    assert decoded.shape == ihc_crop.shape and decoded.dtype == np.uint8


def _error_cases(folder: Path) -> dict[str, list[str]]:
    """Command lines that must fail, by what is wrong with them."""
    truncated = folder / "truncated.sgi"
    truncated.write_bytes((DATA / "fixture_v4.sgi").read_bytes()[:1000])
    foreign = folder / "foreign.sgi"
    foreign.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    missing = str(folder / "missing.sgi")
    png = str(DATA / "ihc_crop64.png")
    out, sgi = ["-o", str(folder / "out.npy")], ["-o", str(folder / "out.sgi")]
    return {
        "info of a missing file": ["info", missing],
        "decompress of a missing file": ["decompress", missing, *out],
        "compress of a missing file": ["compress", str(folder / "missing.tif"), *sgi],
        "fit of a missing file": ["fit", str(folder / "image.xyz")],
        "info of a png": ["info", png],
        "decompress of a png named .sgi": ["decompress", str(foreign), *out],
        "info of a truncated file": ["info", str(truncated)],
        "decompress of a truncated file": ["decompress", str(truncated), *out],
        "fit of a stack": ["fit", str(DATA / "nuclei_zstack_crop.tif")],
        "fit of a text file": ["fit", str(DATA.parent / "conftest.py")],
        "a word for a number": ["fit", png, "--iterations", "many"],
        "a negative step count": ["compress", png, *out, "--iterations", "-5"],
        "an early stop of 1": ["fit", png, "--settle", "1"],
        "an unknown preset": ["compress", png, *sgi, "--preset", "nonsense"],
        "an unknown command": ["squeeze", png],
    }


EXPECTED = {
    "info of a missing file": "No such file",
    "compress of a missing file": "no such file",
    "fit of a missing file": "no such file",
    "info of a png": "PNG",
    "decompress of a png named .sgi": "PNG",
    "info of a truncated file": "truncated",
    "fit of a stack": "3 2D slices",
    "fit of a text file": "unsupported file type",
    "a word for a number": "invalid int value",
    "a negative step count": "positive integer",
    "an early stop of 1": "a number in [0, 1)",
    "an unknown preset": "unknown preset",
}


USAGE_ERRORS = {
    "a word for a number",
    "a negative step count",
    "an early stop of 1",
    "an unknown command",
}  # status 2


def test_every_error_is_one_line_and_a_non_zero_status(tmp_path):
    for case, argv in _error_cases(tmp_path).items():
        done = run_cli(*argv)
        message = done.stderr.strip()
        assert done.returncode != 0, case
        assert "Traceback" not in done.stderr and message.count("\n") == 0, (case, done.stderr)
        assert message.startswith("napari-sgi") and ": error: " in message, (case, message)
        assert EXPECTED.get(case, "") in message, (case, message)
        assert done.returncode == (2 if case in USAGE_ERRORS else 1), case
        assert not (tmp_path / "out.npy").exists() and not (tmp_path / "out.sgi").exists()


@pytest.mark.parametrize(
    ("raised", "status", "message"),
    [
        (KeyboardInterrupt(), 130, "napari-sgi: interrupted"),
        (MemoryError(), 1, "napari-sgi: error: out of memory"),
        (OSError("disk full"), 1, "napari-sgi: error: disk full"),
        (KeyError("slices"), 1, "napari-sgi: error: KeyError: 'slices'"),
        (RuntimeError("two\nlines"), 1, "napari-sgi: error: RuntimeError: two lines"),
    ],
)
def test_main_turns_exceptions_into_one_line(monkeypatch, capsys, raised, status, message):
    import napari_sgi.cli as cli

    def fail(args):
        raise raised

    monkeypatch.setattr(cli, "_cmd_info", fail)
    assert main(["info", "any.sgi"]) == status
    assert capsys.readouterr().err == message + "\n"


def test_fit_reads_its_image_through_the_inputs(tmp_path):
    from napari_sgi.cli import read_2d_image

    rgb = read_2d_image(DATA / "ihc_crop64.png")
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    np.save(tmp_path / "one.npy", np.zeros((1, 8, 12), np.float32))
    assert read_2d_image(tmp_path / "one.npy").shape == (8, 12)  # a stack of one slice
    np.save(tmp_path / "two.npy", np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="2 2D slices"):
        read_2d_image(tmp_path / "two.npy")


def test_compact_preset_writes_a_gridless_model(tmp_path, capsys, nuclei_crop):
    np.save(tmp_path / "nuclei.npy", nuclei_crop)
    out = tmp_path / "n.sgi"
    args = ["--preset", "compact", "--iterations", "20", "--levels", "2", "--json"]
    assert main(["compress", str(tmp_path / "nuclei.npy"), "-o", str(out), *args]) == 0
    compressed = json.loads(capsys.readouterr().out)
    assert compressed["bytes"] == out.stat().st_size
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    model = info["header"]["slices"][0]["regions"][0]["model"]
    assert model["grid_levels"] == 0 and model["feature_dim"] == 4
    assert info["sections"]["slice/0/r0/hash_grid"] == 0
    assert set(info["overhead"]) == {"preamble", "header+index"}  # format version >= 2
    assert main(["decompress", str(out), "-o", str(tmp_path / "d.npy")]) == 0
    assert np.load(tmp_path / "d.npy").shape == nuclei_crop.shape


def test_compress_on_local_workers(tmp_path, capsys):
    import tifffile

    stack = (np.random.default_rng(1).random((2, 20, 24)) * 900).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, metadata={"axes": "ZYX"})
    local, remote = tmp_path / "local.sgi", tmp_path / "remote.sgi"
    base = ["compress", str(tmp_path / "stack.tif"), "--json", *FAST]
    assert main([*base, "-o", str(local)]) == 0
    assert main([*base, "-o", str(remote), "--workers", "2"]) == 0
    assert remote.read_bytes() == local.read_bytes()
    both = run_cli(*base, "-o", str(tmp_path / "x.sgi"), "--workers", "2", "--scheduler", "a:1")
    assert both.returncode != 0 and "either --scheduler or --workers" in both.stderr
