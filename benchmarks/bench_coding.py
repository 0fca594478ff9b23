"""Efficiency and speed of the entropy coder, with each of its two decoders.

Run:  python benchmarks/bench_coding.py [--symbols 1000000] [--repeats 3] [--json] [--no-record]

Symbols are drawn from the distribution they are coded with: a step Q ~ U(0.5, 2) per symbol, a
mean mu ~ N(0, 50 Q), a scale sigma = r Q for each ratio r of the table (and one lognormal(0, 1.5)
mix), x = rint((mu + sigma z) / Q). "ideal" is -sum log2 P(x) with the exact (unsnapped)
parameters, P the Gaussian integrated over the bin of x. Encoding is torchac's; decoding is timed
with the compiled decoder (``codec/_kernels/arith_decoder.c``) and with torchac's
(``NAPARI_SGI_TORCHAC_DECODE=1``), each checked to return the symbols. Throughputs are the best of
``--repeats`` runs (symbols per second, the whole call: CDF tables, coder, checksums).

Also a bit stream (the hash grid's coder): Bernoulli bits with p = 0.3.

Printed (one JSON object per line with --json) and recorded in docs/benchmarks.md ("coding").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import git_revision, machine_description, record_section  # noqa: E402

RATIOS: list[float | str] = [0.3, 1.0, 3.0, 30.0, "lognormal(0, 1.5)"]
TORCHAC_ENV = "NAPARI_SGI_TORCHAC_DECODE"  # native_decoder.TORCHAC_DECODE_ENV


def draw(n: int, ratio: float | str, rng: np.random.Generator):
    """Symbols ``x`` [n] and their coding parameters (mean, scale, step), each [n]."""
    step = rng.uniform(0.5, 2.0, n)
    mean = rng.normal(0.0, 50.0, n) * step
    sigma = rng.lognormal(0.0, 1.5, n) if isinstance(ratio, str) else np.full(n, ratio)
    scale = sigma * step
    x = np.rint((mean + scale * rng.standard_normal(n)) / step).astype(np.int64)
    return x, mean, scale, step


def ideal_bits(x, mean, scale, step) -> float:
    """-sum log2 P(x), P the Gaussian mass of the bin of x (far tails computed from the top)."""
    centred = x * step - mean
    sign = np.where(centred > 0, -1.0, 1.0)
    upper = ndtr(sign * (centred + sign * 0.5 * step) / scale)
    lower = ndtr(sign * (centred - sign * 0.5 * step) / scale)
    return float(-np.log2(np.maximum(upper - lower, 1e-300)).sum())


def best_time(call, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        out = call()
        best = min(best, time.perf_counter() - started)
    return best, out


def decode_with(decoder: str, call):
    """Run ``call`` with the compiled decoder or torchac's (through the documented switch)."""
    previous = os.environ.pop(TORCHAC_ENV, None)
    if decoder == "torchac":
        os.environ[TORCHAC_ENV] = "1"
    try:
        return call()
    finally:
        os.environ.pop(TORCHAC_ENV, None)
        if previous is not None:
            os.environ[TORCHAC_ENV] = previous


def gaussian_row(ratio, n: int, repeats: int, rng) -> dict:
    from napari_sgi.codec.gaussian_stream import decode_gaussian, encode_gaussian

    x, mean, scale, step = draw(n, ratio, rng)
    encode_s, data = best_time(lambda: encode_gaussian(x, mean, scale, step), repeats)
    row = {
        "kind": "gaussian",
        "ratio": ratio if isinstance(ratio, str) else float(ratio),
        "symbols": n,
        "bits_per_symbol": 8 * len(data) / n,
        "ideal_bits_per_symbol": ideal_bits(x, mean, scale, step) / n,
        "encode_per_s": n / encode_s,
    }
    for decoder in ("compiled", "torchac"):
        seconds, out = decode_with(
            decoder, lambda: best_time(lambda: decode_gaussian(data, mean, scale, step), repeats)
        )
        if not np.array_equal(out, x):
            raise SystemExit(f"{decoder} decoder: wrong symbols at ratio {ratio}")
        row[f"decode_{decoder}_per_s"] = n / seconds
    return row


def bits_row(n: int, repeats: int, rng) -> dict:
    from napari_sgi.codec.bit_stream import decode_bits, encode_bits

    bits = (rng.random(n) < 0.3).astype(np.uint8)
    ones = int(bits.sum())
    p = ones / n
    ideal = -(ones * np.log2(p) + (n - ones) * np.log2(1 - p))
    encode_s, data = best_time(lambda: encode_bits(bits), repeats)
    row = {
        "kind": "bits",
        "p": 0.3,
        "symbols": n,
        "bits_per_symbol": 8 * len(data) / n,
        "ideal_bits_per_symbol": ideal / n,
        "encode_per_s": n / encode_s,
    }
    for decoder in ("compiled", "torchac"):
        seconds, out = decode_with(
            decoder, lambda: best_time(lambda: decode_bits(data, n), repeats)
        )
        if not np.array_equal(out, bits):
            raise SystemExit(f"{decoder} decoder: wrong bits")
        row[f"decode_{decoder}_per_s"] = n / seconds
    return row


def markdown(rows: list[dict], command: str) -> str:
    def rate(value: float) -> str:
        return f"{value / 1e6:.1f} M/s"

    lines = [
        "## Entropy coder: efficiency and speed",
        "",
        f"Machine: {machine_description()}; revision `{git_revision()}`.",
        f"Command: `{command}`.",
        "",
        "Symbols drawn from the distribution they are coded with (step Q ~ U(0.5, 2), mean ~ "
        "N(0, 50 Q), scale = σ/Q x Q); ideal = -Σ log2 P with the exact parameters. "
        "Throughput: best of the repeats, the whole call (CDF tables, arithmetic coder, "
        "checksums), in the benchmark's single thread. Encoding is torchac's; 'compiled' is "
        "napari-sgi's C port of torchac's decoder, 'torchac' the same streams decoded by "
        "torchac (both checked to return the symbols).",
        "",
        "| symbols | bits/symbol | ideal | coded / ideal | encode | decode (compiled) "
        "| decode (torchac) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = (
            f"σ/Q = {r['ratio']:g}"
            if isinstance(r.get("ratio"), float)
            else r.get("ratio") or f"bits, p = {r['p']}"
        )
        lines.append(
            f"| {name} | {r['bits_per_symbol']:.4f} | {r['ideal_bits_per_symbol']:.4f} "
            f"| {r['bits_per_symbol'] / r['ideal_bits_per_symbol']:.4f} | "
            f"{rate(r['encode_per_s'])} | {rate(r['decode_compiled_per_s'])} | "
            f"{rate(r['decode_torchac_per_s'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from napari_sgi.codec.native_decoder import uses_native_decoder

    if not uses_native_decoder():
        raise SystemExit("the compiled decoder is not built (pip install -e .)")
    rng = np.random.default_rng(0)
    rows = [gaussian_row(ratio, args.symbols, args.repeats, rng) for ratio in RATIOS]
    rows.append(bits_row(args.symbols, args.repeats, rng))
    for r in rows:
        print(
            json.dumps(r)
            if args.json
            else f"{r.get('ratio', 'bits'):>18} {r['bits_per_symbol']:.4f} bits/symbol "
            f"(ideal {r['ideal_bits_per_symbol']:.4f}); encode "
            f"{r['encode_per_s'] / 1e6:.2f} M/s, decode compiled "
            f"{r['decode_compiled_per_s'] / 1e6:.2f} M/s, torchac "
            f"{r['decode_torchac_per_s'] / 1e6:.2f} M/s",
            flush=True,
        )
    if not args.no_record:
        command = "python benchmarks/bench_coding.py " + " ".join(sys.argv[1:])
        record_section("coding", markdown(rows, command.strip()))


if __name__ == "__main__":
    main()
