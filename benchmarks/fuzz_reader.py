"""Long fuzz run of the .sgi reader (and the symbol decoder): damaged inputs must never crash.

Usage::

    python benchmarks/fuzz_reader.py [ITERATIONS] [--seed N] [--coder]

Each iteration damages a valid file (truncate, flip bits, insert, overwrite, delete bytes, or
rewrite the header/index with valid checksums), opens it and reads every section. The only
allowed failure is ``SGIFormatError``; anything else (or a read taking > 2 s) is counted as a bug
and printed. With ``--coder`` it also damages Gaussian/bit streams and checks that
``decode_gaussian``/``decode_bits`` return the right symbols or raise ``CodingError``, never
wrong symbols. Exit status 1 if any bug was found.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import struct
import sys
import tempfile
import time
import traceback
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("iterations", type=int, nargs="?", default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--coder", action="store_true", help="also fuzz the symbol decoders")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    bugs = fuzz_reader(args.iterations, rng)
    if args.coder:
        bugs += fuzz_coder(max(1, args.iterations // 20), rng)
    print("bugs:", bugs)
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
