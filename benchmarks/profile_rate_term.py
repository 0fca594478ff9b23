"""What the rate phase adds to a training step, apart from the render.

Run:  python benchmarks/profile_rate_term.py [--channels 1] [--steps 300] [--profile]

The ``default`` model of a 512x512 image (random pixels; its size and seed count are what
matter), one torch thread, as a fit runs torch's ops: each timed step computes the entropy
models, the attributes with adaptive noise and the rate term on a random subset of seeds
(``core.fit._noised`` and ``core.fit._rate``), then their backward. Prints the median of three
timings of ``--steps`` steps; ``--profile`` adds torch's operator table. To compare two
revisions, run it in each checkout one after the other.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from napari_sgi.core.fit import _noised, _rate, make_model
from napari_sgi.core.presets import configure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    shape = (args.channels, 512, 512)
    config = configure("default", 512, 512, args.channels)
    model = make_model(shape, config, torch.rand(shape, generator=torch.Generator().manual_seed(0)))
    generator = torch.Generator().manual_seed(1)

    def step() -> None:
        models = model.entropy_models(0)
        attributes = _noised(model, "adaptive", 0, generator, models)
        noise_sum = sum(v.sum() for v in attributes.as_groups().values())
        (0 * noise_sum + _rate(model, config, generator, models)).backward()

    for _ in range(50):
        step()
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        timings.append((time.perf_counter() - started) / args.steps * 1e3)
    runs = ", ".join(f"{t:.2f}" for t in timings)
    print(
        f"{model.config.seed_count} seeds, {args.channels} channel(s): "
        f"{statistics.median(timings):.2f} ms a step (runs {runs})"
    )
    if args.profile:
        with torch.profiler.profile() as profile:
            for _ in range(20):
                step()
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
