import json
import subprocess
import sys

import numpy as np
import pytest

from napari_sgi.cli import main

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

    for suffix in (".png", ".tif", ".npy"):
        target = tmp_path / f"decoded{suffix}"
        assert main(["decompress", str(out), "-o", str(target)]) == 0
        assert target.exists()
    decoded = np.load(tmp_path / "decoded.npy")
    assert decoded.shape == ihc_crop.shape and decoded.dtype == np.uint8


def test_errors_exit_non_zero_with_one_line(tmp_path):
    missing = run_cli("info", str(tmp_path / "missing.sgi"))
    assert missing.returncode != 0
    assert missing.stderr.strip().count("\n") == 0 and "napari-sgi: error" in missing.stderr
    fake = tmp_path / "fake.sgi"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    foreign = run_cli("info", str(fake))
    assert foreign.returncode != 0 and "PNG" in foreign.stderr
    bad = run_cli("fit", str(tmp_path / "image.xyz"))
    assert bad.returncode != 0 and "no such file" in bad.stderr


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
