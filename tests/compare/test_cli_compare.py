"""``napari-sgi compare ORIGINAL FILE.sgi``: the table, and one JSON object with --json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sgi.cli import main


@pytest.fixture(scope="module")
def stack_pair(tmp_path_factory):
    """A 2-slice uint16 stack (.npy) and its .sgi, from a few fitting steps."""
    from napari_sgi.encode.pipeline import compress

    folder = tmp_path_factory.mktemp("compare")
    y, x = np.mgrid[:40, :40]
    stack = np.stack(
        [
            200 + 30 * x + 2000 * np.exp(-((y - 12 - 8 * z) ** 2 + (x - 20) ** 2) / 30)
            for z in (0, 1)
        ]
    ).astype(np.uint16)
    np.save(folder / "stack.npy", stack)
    # Enough Gaussians that each slice's share of the file (about 415 bytes) lies above the
    # smallest JPEG of a 40x40 slice (359 bytes), so that every codec can meet it.
    compress(stack, folder / "stack.sgi", preset="fast", iterations=12, axes="ZYX", density=0.05)
    return folder / "stack.npy", folder / "stack.sgi", stack


def test_compare_json(stack_pair, capsys):
    from napari_sgi.compare import slice_budgets

    original, sgi, _ = stack_pair
    assert (
        main(["compare", str(original), str(sgi), "--codecs", "jpeg,j2k,jxl,avif", "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["n_slices"] == 2 and out["file_bytes"] == sgi.stat().st_size
    budgets = slice_budgets(sgi)
    assert out["budget_bytes"] == budgets and sum(budgets) == sgi.stat().st_size
    assert list(out["codecs"]) == ["sgi", "jpeg", "j2k", "jxl", "avif"]
    for key, codec in out["codecs"].items():
        assert [row["slice"] for row in codec["slices"]] == [0, 1]
        for row, budget in zip(codec["slices"], budgets, strict=True):
            assert {"bytes", "bpp", "psnr", "ssim"} <= set(row)
            assert row["bytes"] <= budget if key != "sgi" else row["bytes"] == budget
            assert row["bpp"] == pytest.approx(8 * row["bytes"] / (40 * 40))
    assert "uint16 values" in out["mapping"]["JPEG 2000"]
    # The SGI row measures the decoded slices as the encoder did (the file's value range).
    from napari_sgi.reader import SGIFile

    header_psnr = [entry.psnr for entry in SGIFile(sgi).slices]
    measured = [row["psnr"] for row in out["codecs"]["sgi"]["slices"]]
    assert measured == pytest.approx(header_psnr, abs=1e-3)


def test_compare_table_and_errors(stack_pair, capsys, tmp_path):
    original, sgi, stack = stack_pair
    assert main(["compare", str(original), str(sgi)]) == 0
    text = capsys.readouterr().out
    assert "slice 1: budget" in text and "JPEG 2000" in text and "JPEG XL" in text
    assert "*" in text and "AVIF" not in text  # j2k and jxl by default
    np.save(tmp_path / "other.npy", stack[0])
    assert main(["compare", str(tmp_path / "other.npy"), str(sgi)]) == 1
    assert "compare a file with the image it was compressed from" in capsys.readouterr().err
    assert main(["compare", str(original), str(sgi), "--codecs", "webp"]) == 1
    assert "unknown codec 'webp'" in capsys.readouterr().err
