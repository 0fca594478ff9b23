"""The resume folder: plain, checksummed parts, verified before use; nothing in it is executed."""

import json
import os
import pickle
import struct
import warnings
import zlib

import numpy as np
import pytest

from napari_sgi.core.model import ModelConfig
from napari_sgi.core.regions import plan_regions
from napari_sgi.encode.pipeline import compress
from napari_sgi.encode.resume import (
    MAGIC,
    PartError,
    ResumePartWarning,
    ResumeStore,
    decode_part,
    encode_part,
)
from napari_sgi.encode.slices import RegionResult, SliceResult
from napari_sgi.file.header import MODEL_SECTIONS

TINY = dict(preset="fast", iterations=8, feature_dim=4, gaussians_per_seed=2, density=0.2, levels=1)
REGIONS = plan_regions(64, 64, 32, 32)
EXPECTED = dict(index=3, job="f" * 64, regions=REGIONS, blend=32, channels=1)


def _result() -> SliceResult:
    rng = np.random.default_rng(0)
    regions = [
        RegionResult(
            r,
            ModelConfig(
                *r.box_shape, channels=1, feature_dim=4, gaussians_per_seed=2, seed_count=5
            ),
            {name: rng.bytes(int(rng.integers(0, 40))) for name in MODEL_SECTIONS},
        )
        for r in REGIONS
    ]
    return SliceResult(regions, 32, 0.001234567890123, 0.9876543210123)


def _split(raw: bytes) -> tuple[dict, bytes]:
    length, _ = struct.unpack_from("<II", raw, len(MAGIC))
    start = len(MAGIC) + 8
    return json.loads(raw[start : start + length]), raw[start + length :]


def _join(description: dict, payload: bytes) -> bytes:
    text = json.dumps(description).encode()
    return MAGIC + struct.pack("<II", len(text), zlib.crc32(text)) + text + payload


def test_a_part_round_trips_exactly():
    result = _result()
    back = decode_part(encode_part(result, 3, "f" * 64), **EXPECTED)
    assert back == result and back.psnr == result.psnr and back.gaussians == 40


def _edit(change):
    def mutate(raw: bytes) -> bytes:
        description, payload = _split(raw)
        change(description)
        return _join(description, payload)

    return mutate


def _set_model(description, **fields):
    description["regions"][1]["model"].update(fields)


MUTATIONS = {
    "pickle": lambda raw: pickle.dumps({"regions": []}),
    "empty": lambda raw: b"",
    "truncated": lambda raw: raw[:-1],
    "trailing bytes": lambda raw: raw + b"\0",
    "flipped section byte": lambda raw: raw[:-3] + bytes([raw[-3] ^ 1]) + raw[-2:],
    "flipped description byte": lambda raw: raw.replace(b'"mse":0.0012', b'"mse":0.0013'),
    "huge description length": lambda raw: MAGIC + struct.pack("<II", 2**31, 0) + raw[24:],
    "another job": _edit(lambda d: d.update(job="0" * 64)),
    "another slice": _edit(lambda d: d.update(slice=4)),
    "another format": _edit(lambda d: d.update(format=2)),
    "bool format": _edit(lambda d: d.update(format=True)),
    "another blend": _edit(lambda d: d.update(blend=0)),
    "mse as text": _edit(lambda d: d.update(mse="0.1")),
    "mse out of range": _edit(lambda d: d.update(mse=-1.0)),
    "ssim out of range": _edit(lambda d: d.update(ssim=7)),
    "extra key": _edit(lambda d: d.update(code="os.system('rm -rf /')")),
    "missing region": _edit(lambda d: d["regions"].pop()),
    "moved core": _edit(lambda d: d["regions"][0].update(core=[0, 32, 0, 31])),
    "absurd seed count": _edit(lambda d: _set_model(d, seed_count=10**12)),
    "model of another size": _edit(lambda d: _set_model(d, height=17)),
    "unknown model field": _edit(lambda d: _set_model(d, surprise=1)),
    "other channels": _edit(lambda d: _set_model(d, channels=3)),
    "renamed section": _edit(lambda d: d["regions"][0]["sections"][0].update(name="code")),
    "negative length": _edit(lambda d: d["regions"][0]["sections"][0].update(length=-1)),
    "longer section": _edit(lambda d: d["regions"][0]["sections"][0].update(length=10**9)),
    "not an object": lambda raw: _join([1, 2], b""),
    "NaN": lambda raw: _join({}, b"").replace(b"{}", b"NaN"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_damaged_or_foreign_part_is_refused(name):
    raw = MUTATIONS[name](encode_part(_result(), 3, "f" * 64))
    with pytest.raises(PartError):
        decode_part(raw, **EXPECTED)


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    rng = np.random.default_rng(1)
    return (rng.random((3, 24, 20)) * 4000).astype(np.uint16)


@pytest.fixture(scope="module")
def reference(stack, tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("reference") / "reference.sgi"
    compress(stack, out, **TINY)
    return out.read_bytes()


def _interrupted(stack, out) -> list:
    """Run until slice 2 starts: slices 0 and 1 are left as parts."""

    def interrupt(event):
        if event.slice_index == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compress(stack, out, progress=interrupt, **TINY)
    return sorted(out.with_name(out.name + ".parts").glob("slice-*.part"))


def _resume(stack, out) -> tuple[set, list]:
    fitted = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compress(stack, out, progress=lambda e: fitted.add(e.slice_index), **TINY)
    return fitted, [w for w in caught if issubclass(w.category, ResumePartWarning)]


class _Planted:
    """Unpickling this creates ``marker``: what a planted pickle could do, harmlessly."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_planted_pickle_is_never_loaded(tmp_path, stack, reference):
    out = tmp_path / "planted.sgi"
    parts = _interrupted(stack, out)
    marker = tmp_path / "unpickled"
    parts[0].write_bytes(pickle.dumps(_Planted(marker)))  # job.json still says the same job
    fitted, caught = _resume(stack, out)
    assert not marker.exists()
    assert fitted == {0, 2} and len(caught) == 1 and "slice-0000000.part" in str(caught[0].message)
    assert out.read_bytes() == reference and not parts[0].parent.exists()


def test_a_corrupt_part_is_fitted_again_to_the_same_bytes(tmp_path, stack, reference):
    out = tmp_path / "corrupt.sgi"
    parts = _interrupted(stack, out)
    raw = bytearray(parts[1].read_bytes())
    raw[-5] ^= 0xFF
    parts[1].write_bytes(bytes(raw))
    fitted, caught = _resume(stack, out)
    assert fitted == {1, 2} and len(caught) == 1 and "damaged" in str(caught[0].message)
    assert out.read_bytes() == reference


def test_odd_files_in_the_folder_are_ignored_or_left_alone(tmp_path, stack, reference):
    out = tmp_path / "odd.sgi"
    parts = _interrupted(stack, out)
    folder = parts[0].parent
    os.mkfifo(folder / "slice-0000002.part")  # reading it would block forever
    (folder / "slice-0000009.part").write_bytes(parts[0].read_bytes())  # no such slice
    (folder / "slice-x.part").write_bytes(b"not ours")
    (folder / "notes.txt").write_text("the user's")
    fitted, caught = _resume(stack, out)
    assert fitted == {2} and len(caught) == 2
    assert out.read_bytes() == reference
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "slice-x.part"]


def test_another_jobs_folder_is_cleared(tmp_path, stack, reference):
    out = tmp_path / "other.sgi"
    parts = _interrupted(stack, out)
    (parts[0].parent / "job.json").write_text('{"format": 1, "job": "another"}')
    fitted, caught = _resume(stack, out)
    assert fitted == {0, 1, 2} and not caught and out.read_bytes() == reference


def test_the_store_keeps_what_it_saved(tmp_path):
    store = ResumeStore(tmp_path / "a.sgi", "f" * 64, REGIONS, 32, 1)
    assert store.open(5) == set() and not store.has_parts()
    store.save(3, _result())
    assert store.load(3) == _result() and store.has_parts()
    assert [p.name for p in store.folder.iterdir() if p.suffix == ".tmp"] == []
    assert ResumeStore(tmp_path / "a.sgi", "f" * 64, REGIONS, 32, 1).open(5) == {3}
    store.remove()
    assert not store.folder.exists()
