"""Long fuzz run of the .sgi reader (and the symbol decoder): damaged inputs must never crash.

Usage::

    python benchmarks/fuzz_reader.py [ITERATIONS] [--seed N] [--coder]
    python benchmarks/fuzz_reader.py --decode [ITERATIONS] [--minutes M] [--seed N]

Each iteration damages a valid file (truncate, flip bits, insert, overwrite, delete bytes, or
rewrite the header/index with valid checksums), opens it and reads every section. The only
allowed failure is ``SGIFormatError``; anything else (or a read taking > 2 s) is counted as a bug
and printed. With ``--coder`` it also damages Gaussian/bit streams and checks that
``decode_gaussian``/``decode_bits`` return the right symbols or raise ``CodingError``, never
wrong symbols. Exit status 1 if any bug was found.

``--decode`` fuzzes the whole decode path instead: it mutates the header and sections of real
small files (the committed fixtures) with valid checksums (values, shapes and region layouts
scaled consistently, dtypes, value ranges, boxes, model configurations, counts, section bytes and
stream headers), then opens each with :func:`napari_sgi.open_sgi` and renders it (the whole image
up to 16 M values, else its coarsest level and two chunks of the full resolution) in a worker
process limited to ``WORKER_ADDRESS_SPACE``. It counts crashes (any exception but
``SGIFormatError``, or one that the reader's last-resort handler turned into one), hangs (a case
over ``CASE_SECONDS``; the worker is restarted), allocations over 2 GiB (a MemoryError, or a
case's peak resident memory above 2 GiB) and silently wrong decodes (NaN or infinity in a float
image, values outside the header's value range, another shape or dtype than the header's, a
numpy RuntimeWarning such as an invalid cast). A case about to be called a hang prints its
threads' stacks (faulthandler) before its worker is replaced.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections import Counter
from pathlib import Path

from napari_sgi.errors import SGIFormatError
from napari_sgi.file.container import SGIReader, SGIWriter
from napari_sgi.file.format import MAGIC, VERSION, Format, SectionEntry


def valid_file(rng: random.Random) -> bytes:
    header = {
        "shape": [rng.randint(1, 5), 256, 256],
        "axes": "ZYX",
        "dtype": "<u2",
        "scale": [2.0, 0.2, 0.2],
        "channel_names": ["c0"],
        "model": {"features": 50, "note": "x" * rng.randint(0, 300)},
    }
    sections = {
        f"slice/{i}/{part}": rng.randbytes(rng.randint(0, 3000))
        for i in range(rng.randint(0, 4))
        for part in ("mlp", "features", "offsets")
    }
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.sgi"
        with SGIWriter(path, header) as writer:
            for name, data in sections.items():
                writer.add_section(name, data)
        return path.read_bytes()


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "flip", "insert", "overwrite", "delete", "index", "header"])
    n = len(data)
    if kind == "truncate":
        return kind, data[: rng.randrange(n)]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(n)] ^= 1 << rng.randrange(8)
        return kind, bytes(out)
    if kind == "insert":
        pos = rng.randrange(n + 1)
        return kind, data[:pos] + rng.randbytes(rng.randint(1, 64)) + data[pos:]
    if kind == "overwrite":
        pos = rng.randrange(n)
        blob = rng.randbytes(rng.randint(1, 32))
        return kind, data[:pos] + blob + data[pos + len(blob) :]
    if kind == "delete":
        pos = rng.randrange(n)
        return kind, data[:pos] + data[pos + rng.randint(1, 64) :]
    # Structured damage behind valid checksums: arbitrary index values or header fields.
    payload = rng.randbytes(rng.randint(0, 200))
    if kind == "index":
        size = len(payload)
        big = [0, 1, max(0, size - 1), size, size + 1, 2**32, 2**63, 2**64 - 1]
        entries = [  # the index stores lengths only: offsets follow from them
            SectionEntry(f"s{i}", 0, rng.choice(big + [rng.randrange(300)]), 0)
            for i in range(rng.randint(0, 4))
        ]
        header = b"{}"
    else:
        entries = [SectionEntry("p", 16, len(payload), zlib.crc32(payload))]
        field = rng.choice(["shape", "axes", "dtype", "scale", "contrast_limits", "n_slices"])
        value = rng.choice([None, -1, 0, 10**13, [10**7] * 3, "ZZ", "float64", [1, -1], [[0, 1]]])
        header = json.dumps({field: value}).encode()
    footer = Format().encode_footer(header, entries)  # offsets are implied by the lengths
    return kind, struct.pack("<8sII", MAGIC, VERSION, len(footer)) + payload + footer


def read_everything(data: bytes) -> None:
    with SGIReader(io.BytesIO(data)) as reader:
        for name in reader.section_names:
            reader.read_section(name)
        assert reader.info().total == len(data)


def fuzz_reader(iterations: int, rng: random.Random) -> int:
    outcomes: Counter = Counter()
    bugs = 0
    base = [valid_file(rng) for _ in range(8)]
    start = time.perf_counter()
    for _ in range(iterations):
        kind, data = mutate(rng.choice(base), rng)
        t0 = time.perf_counter()
        try:
            read_everything(data)
            outcomes[(kind, "read ok")] += 1
        except SGIFormatError as exc:
            message = re.sub(r"'[^']*'", "'...'", re.sub(r"0x[0-9a-f]+|\d+", "N", str(exc)))
            outcomes[(kind, "SGIFormatError: " + message.split(" (")[0][:70])] += 1
        except Exception:  # noqa: BLE001 - this is what we hunt for
            bugs += 1
            outcomes[(kind, "BUG")] += 1
            traceback.print_exc()
        if time.perf_counter() - t0 > 2.0:
            bugs += 1
            outcomes[(kind, "BUG: slow")] += 1
    elapsed = time.perf_counter() - start
    print(f"reader: {iterations} files in {elapsed:.1f} s ({iterations / elapsed:.0f}/s)")
    by_result: Counter = Counter()
    for (_, result), count in outcomes.items():
        by_result[result] += count
    for result, count in by_result.most_common():
        print(f"  {count:8d}  {result}")
    return bugs


def fuzz_coder(iterations: int, rng: random.Random) -> int:
    import numpy as np

    from napari_sgi.codec.bit_stream import decode_bits, encode_bits
    from napari_sgi.codec.gaussian_stream import decode_gaussian, encode_gaussian
    from napari_sgi.errors import CodingError

    gen = np.random.default_rng(rng.randrange(2**32))
    n = 4000
    step = gen.uniform(0.1, 2.0, n)
    mean = gen.normal(0, 20, n) * step
    scale = gen.lognormal(0, 1.5, n) * step
    x = np.rint((mean + scale * gen.standard_normal(n)) / step).astype(np.int64)
    x[gen.random(n) < 0.01] += 10**6
    streams = {"gaussian": encode_gaussian(x, mean, scale, step)}
    bits = gen.random(50_000) < 0.2
    streams["bits"] = encode_bits(bits)
    outcomes: Counter = Counter()
    bugs = 0
    for _ in range(iterations):
        which = rng.choice(list(streams))
        _, data = mutate(streams[which], rng)
        try:
            if which == "gaussian":
                ok = np.array_equal(decode_gaussian(data, mean, scale, step), x)
            else:
                ok = np.array_equal(decode_bits(data), bits)
            outcomes[f"{which}: right symbols" if ok else f"{which}: BUG wrong symbols"] += 1
            bugs += not ok
        except CodingError as exc:
            outcomes[f"{which}: {type(exc).__name__}"] += 1
        except Exception:  # noqa: BLE001
            bugs += 1
            outcomes[f"{which}: BUG"] += 1
            traceback.print_exc()
    print(f"coder: {iterations} streams")
    for result, count in outcomes.most_common():
        print(f"  {count:8d}  {result}")
    return bugs


# -- the whole decode path ---------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "data"
WORKER_ADDRESS_SPACE = 3 << 30  # the worker's limit: torch takes ~1.3 GiB of address space
LARGE_RSS = 2 << 30  # a case whose peak resident memory exceeds this counts as an allocation bug
CASE_SECONDS = 30.0  # a case still running after this is a hang
FULL_RENDER_VALUES = 16 << 20  # render the whole image up to this; beyond, a sample of it
BAD_VALUES = [
    None,
    True,
    -1,
    0,
    1,
    2,
    3,
    7,
    255,
    2**16,
    2**24,
    2**28,
    2**31,
    2**53,
    2**63,
    -(2**63),
    10**30,
    0.5,
    -0.0,
    1e-308,
    1e308,
    -1e308,
    3.5e38,
    "",
    "x",
    "YX",
    "<u2",
    [],
    {},
    [0],
    [1, 2],
    [0, 64, 0, 64],
    [[0, 1]],
    [64, 0, 0, 64],
    [0, 10**9, 0, 64],
    {"a": 1},
]
DTYPES = [
    "|u1",
    "<u2",
    ">u2",
    "<i2",
    "<u4",
    "<i4",
    "<u8",
    "<i8",
    "<f2",
    "<f4",
    ">f4",
    "<f8",
    "|i1",
    "uint8",
    "float64",
    "|b1",
    "<f16",
    "<c8",
    "|V4",
    "<M8",
    "O",
    "float128",
    "<U2",
    "|S1",
]
RANGES = [
    [0, 0],
    [0, 1],
    [5, 1],
    [0, 255],
    [0, 65535],
    [-32768, 32767],
    [0, 2**64],
    [-1e30, 1e30],
    [0, 1e39],
    [-1e308, 1e308],
    [0, 1e308],
    [1e-300, 2e-300],
    [-3.4e38, 3.4e38],
    [0.5, 0.5],
]
MODEL_FIELDS = [
    "height", "width", "channels", "feature_dim", "gaussians_per_seed", "seed_count",
    "rng_seed", "levels", "grid_levels", "grid_features", "grid_log2_table",
]  # fmt: skip


def fixture_files() -> list[tuple[dict, dict[str, bytes]]]:
    """(header, sections) of each committed fixture, and of one region of it on its own."""
    out = []
    for name in ("fixture_v4.sgi", "fixture_v4_rgb.sgi", "fixture_v4_coded.sgi"):
        with SGIReader(FIXTURES / name) as reader:
            header = json.loads(json.dumps(reader.header))
            sections = {n: reader.read_section(n) for n in reader.section_names}
        out.append((header, sections))
    header, sections = out[0]
    single = json.loads(json.dumps(header))
    region = single["slices"][0]["regions"][1]
    region["core"] = region["box"] = [0, 64, 0, 64]
    single["layout"] = {"axes": "YX", "shape": [64, 64], "dtype": "<u2"}
    single["n_slices"] = 1
    single["slices"] = [{**single["slices"][0], "key": [], "regions": [region]}]
    parts = {k.replace("slice/0/r1/", "slice/0/r0/"): v for k, v in sections.items()}
    out.append((single, {k: v for k, v in parts.items() if k.startswith("slice/0/r0/")}))
    return out


def assemble(header: dict, sections: dict[str, bytes]) -> bytes:
    """A file of any header and sections, with valid checksums (the writer would check the
    header; the format's own footer encoder does not)."""
    raw = json.dumps(header, separators=(",", ":")).encode()
    entries = [SectionEntry(n, 0, len(d), zlib.crc32(d)) for n, d in sections.items()]
    footer = Format().encode_footer(raw, entries)
    return struct.pack("<8sII", MAGIC, VERSION, len(footer)) + b"".join(sections.values()) + footer


def _nodes(value, path=()):
    """Every path into a JSON value (the root excluded)."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        yield (*path, key)
        if isinstance(child, dict | list) and child:
            yield from _nodes(child, (*path, key))


def _get(value, path):
    for key in path:
        value = value[key]
    return value


def _regions(header: dict) -> list[dict]:
    slices = header.get("slices")
    if not isinstance(slices, list):
        return []
    return [
        region
        for entry in slices
        if isinstance(entry, dict) and isinstance(entry.get("regions"), list)
        for region in entry["regions"]
        if isinstance(region, dict)
    ]


def _bad_value(rng: random.Random):
    """One of ``BAD_VALUES``, a copy (later mutations change lists in place)."""
    return json.loads(json.dumps(rng.choice(BAD_VALUES)))


def _near(rng: random.Random, value):
    """A value near ``value`` (an int or a float), or a far one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _bad_value(rng)
    op = rng.choice(["+1", "-1", "x2", "/2", "neg", "x1000", "bit"])
    if op == "+1":
        return value + 1
    if op == "-1":
        return value - 1
    if op == "x2":
        return value * 2
    if op == "/2":
        return value // 2 if isinstance(value, int) else value / 2
    if op == "neg":
        return -value
    if op == "x1000":
        return value * 1000
    return 1 << rng.randrange(64)


def _scale(header: dict, rng: random.Random) -> None:
    """Scale the image's height and width, and every region, consistently (real content)."""
    layout = header.get("layout")
    if not isinstance(layout, dict) or not isinstance(layout.get("shape"), list):
        return
    fy, fx = rng.choice([(2, 2), (4, 1), (16, 16), (64, 64), (127, 1), (128, 128), (129, 3)])
    if rng.random() < 0.3:
        fy, fx = rng.choice([1000, 4096, 1 << 14]), rng.choice([1, 2, 1000])
    axes = layout.get("axes", "YX")
    y = axes.find("Y") if isinstance(axes, str) else -1
    if y < 0 or y + 1 >= len(layout["shape"]):
        return
    layout["shape"][y] *= fy
    layout["shape"][y + 1] *= fx
    if isinstance(layout.get("slice_shape"), list) and len(layout["slice_shape"]) >= 2:
        layout["slice_shape"][0] *= fy
        layout["slice_shape"][1] *= fx
    for region in _regions(header):
        for key in ("core", "box"):
            if isinstance(region.get(key), list) and len(region[key]) == 4:
                region[key] = [v * f for v, f in zip(region[key], (fy, fy, fx, fx), strict=True)]
        box, model = region.get("box"), region.get("model")
        if isinstance(model, dict) and isinstance(box, list) and len(box) == 4:
            model["height"], model["width"] = box[1] - box[0], box[3] - box[2]


def _stack(header: dict, rng: random.Random, sections: dict[str, bytes]) -> None:
    """More (or fewer) slices along the stack axis, each with the first slice's regions."""
    layout, slices = header.get("layout"), header.get("slices")
    if not isinstance(layout, dict) or not isinstance(slices, list) or not slices:
        return
    count = rng.choice([0, 2, 3, 17, 1000])
    if layout.get("axes") in ("YX", "YXS"):
        layout["axes"] = "Z" + layout["axes"]
        layout["shape"] = [1, *layout["shape"]]
    layout["shape"][0] = count
    header["n_slices"] = count
    first = slices[0]
    header["slices"] = [{**first, "key": [z]} for z in range(count)] if count <= 20 else slices
    for z in range(min(count, 20)):
        for name in [n for n in sections if n.startswith("slice/0/")]:
            sections[name.replace("slice/0/", f"slice/{z}/", 1)] = sections[name]


def _stream_counts(data: bytes, rng: random.Random) -> bytes:
    """The same Gaussian stream claiming other symbol counts (valid-looking header)."""
    from napari_sgi.codec.gaussian_stream import _pack_head, _unpack_head

    try:
        params, chunks, start = _unpack_head(data)
    except ValueError:
        return data
    factor = rng.choice([2, 16, 1 << 10, 1 << 16])
    chunks = [(c[0] * factor, *c[1:]) for c in chunks]
    n = sum(c[0] for c in chunks)
    return _pack_head((*params[:3], n), chunks) + data[start:]


def mutate_decode(
    header: dict, sections: dict[str, bytes], rng: random.Random
) -> tuple[str, dict, dict[str, bytes]]:
    """Apply 1 to 3 mutations of a kind chosen at random; return the kinds applied."""
    kinds = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        kind = rng.choice(
            ["value", "near", "scale", "stack", "dtype", "range", "box", "model", "count"]
            + ["regions", "sections", "stream"]
        )
        kinds.append(kind)
        try:
            _mutate_once(kind, header, sections, rng)
        except (TypeError, KeyError, IndexError, AttributeError, ValueError):
            pass  # an earlier mutation left nothing this one applies to
    return "+".join(sorted(set(kinds))), header, sections


def _mutate_once(kind: str, header: dict, sections: dict[str, bytes], rng: random.Random) -> None:
    regions = _regions(header)
    if kind in ("value", "near"):
        paths = list(_nodes(header))
        path = rng.choice(paths)
        parent = _get(header, path[:-1])
        old = parent[path[-1]]
        parent[path[-1]] = _near(rng, old) if kind == "near" else _bad_value(rng)
    elif kind == "scale":
        _scale(header, rng)
    elif kind == "stack":
        _stack(header, rng, sections)
    elif kind == "dtype" and isinstance(header.get("layout"), dict):
        header["layout"]["dtype"] = rng.choice(DTYPES)
    elif kind == "range":
        header[rng.choice(["value_range", "contrast_limits"])] = list(rng.choice(RANGES))
    elif kind == "box" and regions:
        region = rng.choice(regions)
        key = rng.choice(["core", "box"])
        if isinstance(region.get(key), list) and len(region[key]) == 4:
            i = rng.randrange(4)
            region[key][i] = _near(rng, region[key][i])
    elif kind == "model" and regions:
        model = rng.choice(regions).get("model")
        if isinstance(model, dict):
            name = rng.choice(MODEL_FIELDS)
            model[name] = _near(rng, model.get(name, 1))
    elif kind == "count":
        key = rng.choice(["n_slices", "layout.n_slices", "layout.slice_shape", "blend"])
        if key == "blend" and isinstance(header.get("slices"), list) and header["slices"]:
            entry = rng.choice(header["slices"])
            if isinstance(entry, dict):
                entry["blend"] = _near(rng, entry.get("blend", 32))
        elif key.startswith("layout.") and isinstance(header.get("layout"), dict):
            field = key.split(".")[1]
            header["layout"][field] = _near(rng, header["layout"].get(field, 1))
        else:
            header["n_slices"] = _near(rng, header.get("n_slices", 1))
    elif kind == "regions" and isinstance(header.get("slices"), list) and header["slices"]:
        entry = rng.choice(header["slices"])
        if isinstance(entry, dict) and isinstance(entry.get("regions"), list):
            items = entry["regions"]
            op = rng.choice(["drop", "duplicate", "reverse", "swap models"])
            if op == "drop" and items:
                items.pop(rng.randrange(len(items)))
            elif op == "duplicate" and items:
                items.append(json.loads(json.dumps(rng.choice(items))))
            elif op == "reverse":
                items.reverse()
            elif len(items) >= 2:
                items[0]["model"], items[1]["model"] = items[1]["model"], items[0]["model"]
    elif kind == "sections" and sections:
        names = list(sections)
        name = rng.choice(names)
        op = rng.choice(["swap", "truncate", "extend", "random", "drop", "flip", "extra"])
        data = sections[name]
        if op == "swap":
            other = rng.choice(names)
            sections[name], sections[other] = sections[other], data
        elif op == "truncate":
            sections[name] = data[: rng.randrange(len(data) + 1)]
        elif op == "extend":
            sections[name] = data + rng.randbytes(rng.randint(1, 64))
        elif op == "random":
            sections[name] = rng.randbytes(len(data))
        elif op == "drop":
            del sections[name]
        elif op == "flip" and data:
            out = bytearray(data)
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
            sections[name] = bytes(out)
        else:
            sections[f"slice/0/r{rng.randrange(9)}/extra"] = rng.randbytes(16)
    elif kind == "stream":
        streams = [n for n in sections if n.endswith(("features", "log_scaling", "offsets"))]
        if streams:
            name = rng.choice(streams)
            sections[name] = _stream_counts(sections[name], rng)


def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) << 10 for line in status if line.startswith("VmHWM"))


def _check_decoded(image, header: dict, rng: random.Random) -> str | None:
    """Render ``image`` (all of it, or a sample); what is silently wrong with it, if anything."""
    import numpy as np

    layout = header["layout"]
    data = image.levels[0]
    if list(data.shape) != list(layout["shape"]) or data.dtype != np.dtype(layout["dtype"]):
        return f"shape/dtype {data.shape} {data.dtype} for {layout['shape']} {layout['dtype']}"
    if data.size <= FULL_RENDER_VALUES:
        pieces = [data.compute()]
    else:
        pieces = [image.levels[-1].compute()]
        n_lead = len(data.shape) - 2 - image.rgb
        for _ in range(2):
            key = tuple(rng.randrange(n) for n in data.shape[:n_lead])
            y, x = (rng.randrange(0, max(1, n - 511)) for n in data.shape[n_lead : n_lead + 2])
            pieces.append(data[(*key, slice(y, y + 512), slice(x, x + 512))].compute())
    low, high = header["value_range"]
    slack = 1.0  # integers are rounded; floats are rounded to their own precision
    if data.dtype.kind == "f":
        slack = 4 * float(np.finfo(data.dtype).eps) * max(abs(low), abs(high), 1.0)
    for pixels in pieces:
        if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
            return "NaN or infinity in the image"
        values = pixels.astype(np.float64)
        if pixels.size and (values.min() < low - slack or values.max() > high + slack):
            return f"values {values.min()}..{values.max()} outside the value range {low}..{high}"
    return None


def decode_worker() -> None:
    """Serve cases on stdin (``path seed`` per line), one JSON result per line on stdout."""
    import faulthandler
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (WORKER_ADDRESS_SPACE, WORKER_ADDRESS_SPACE))
    from napari_sgi.reader import open_sgi

    for line in sys.stdin:
        path, seed = line.split()
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets the peak resident memory
        # A case about to be called a hang prints every thread's stack first (to stderr).
        faulthandler.dump_traceback_later(CASE_SECONDS)
        start = time.perf_counter()
        image = None
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                image = open_sgi(path)
                with SGIReader(path) as reader:
                    header = reader.header
                wrong = _check_decoded(image, header, random.Random(int(seed)))
            # numpy's "invalid value encountered in cast" and the like: a value made up
            numeric = [w for w in caught if issubclass(w.category, RuntimeWarning)]
            if numeric and not wrong:
                wrong = f"RuntimeWarning: {numeric[0].message}"
            result = {"outcome": "wrong", "detail": wrong} if wrong else {"outcome": "ok"}
        except SGIFormatError as exc:
            cause = exc.__cause__
            if cause is not None and not isinstance(cause, ValueError):
                outcome = "memory" if isinstance(cause, MemoryError) else "crash"
                result = {"outcome": outcome, "detail": f"{type(cause).__name__}: {exc}"}
            else:
                result = {"outcome": "refused", "detail": str(exc)}
        except MemoryError as exc:
            result = {"outcome": "memory", "detail": f"MemoryError: {exc}"}
        except Exception as exc:  # noqa: BLE001 - what we hunt for
            detail = "".join(traceback.format_exception(exc))[-1500:]
            result = {"outcome": "crash", "detail": f"{type(exc).__name__}: {detail}"}
        finally:
            if image is not None:
                image.file.close()
        faulthandler.cancel_dump_traceback_later()
        result.update(seconds=time.perf_counter() - start, peak=_peak_rss())
        if result["outcome"] in ("ok", "refused") and result["peak"] > LARGE_RSS:
            result["outcome"] = "memory"
        print(json.dumps(result), flush=True)


class _Worker:
    """The decode worker process, restarted after a hang or a death."""

    def __init__(self) -> None:
        self.process = None

    def run(self, path: str, seed: int) -> dict:
        import select
        import subprocess

        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, __file__, "--worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        self.process.stdin.write(f"{path} {seed}\n")
        self.process.stdin.flush()
        # The first case of a worker also imports torch.
        ready, _, _ = select.select([self.process.stdout], [], [], CASE_SECONDS + 20)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            code = self.process.poll()
            self.close()
            # Killed (by the kernel's OOM killer): memory; any other death: a crash.
            outcome = "hang" if code is None else "memory" if code == -9 else "crash"
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            detail = f"no answer (exit {code}; load average {load})"
            return {"outcome": outcome, "detail": detail, "seconds": 0}
        return json.loads(line)

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def fuzz_decode(iterations: int, minutes: float, rng: random.Random) -> int:
    """Mutated real files through the whole decode path; returns the number of bugs."""
    bases = fixture_files()
    worker = _Worker()
    outcomes: Counter = Counter()
    bugs: Counter = Counter()
    slowest, largest = 0.0, 0
    start = time.perf_counter()
    done = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "case.sgi")
        try:
            while done < iterations and time.perf_counter() - start < minutes * 60:
                header, sections = rng.choice(bases)
                header, sections = json.loads(json.dumps(header)), dict(sections)
                kinds, header, sections = mutate_decode(header, sections, rng)
                try:
                    data = assemble(header, sections)
                except (ValueError, TypeError):
                    continue  # too large a header for the format's own encoder
                Path(path).write_bytes(data)
                result = worker.run(path, rng.randrange(2**32))
                done += 1
                outcome = result["outcome"]
                if outcome == "ok" and result["seconds"] > CASE_SECONDS:
                    outcome = "hang"
                if outcome == "refused":
                    message = re.sub(r"'[^']*'", "'...'", re.sub(r"\d+", "N", result["detail"]))
                    message = message.split(": ", 1)[-1].split(" (got")[0][:80]
                    outcomes["SGIFormatError: " + message] += 1
                else:
                    outcomes[outcome] += 1
                if outcome not in ("ok", "refused"):
                    bugs[outcome] += 1
                    keep = Path(tmp).parent / f"sgi-fuzz-{outcome}-{done}.sgi"
                    keep.write_bytes(data)
                    print(f"{outcome} ({kinds}) kept as {keep}: {result['detail'][:600]}")
                slowest = max(slowest, result.get("seconds", 0))
                largest = max(largest, result.get("peak", 0))
        finally:
            worker.close()
    elapsed = time.perf_counter() - start
    print(
        f"decode: {done} cases in {elapsed / 60:.1f} min; slowest {slowest:.2f} s, "
        f"largest peak RSS {largest / 2**20:.0f} MiB"
    )
    for result, count in outcomes.most_common(40):
        print(f"  {count:8d}  {result}")
    print(
        f"  crashes {bugs['crash']}, hangs {bugs['hang']}, allocations over 2 GiB "
        f"{bugs['memory']}, silently wrong decodes {bugs['wrong']}"
    )
    return sum(bugs.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iterations", type=int, nargs="?", default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--coder", action="store_true", help="also fuzz the symbol decoders")
    parser.add_argument("--decode", action="store_true", help="fuzz the whole decode path")
    parser.add_argument("--minutes", type=float, default=1e9, help="stop --decode after this")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        decode_worker()
        return 0
    rng = random.Random(args.seed)
    if args.decode:
        bugs = fuzz_decode(args.iterations, args.minutes, rng)
    else:
        bugs = fuzz_reader(args.iterations, rng)
        if args.coder:
            bugs += fuzz_coder(max(1, args.iterations // 20), rng)
    print("bugs:", bugs)
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
