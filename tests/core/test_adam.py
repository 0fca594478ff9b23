"""Our Adam against torch.optim.Adam, bit for bit."""

from __future__ import annotations

import subprocess
import sys

import torch

from napari_sgi.core.adam import Adam


def _parameters(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.nn.Parameter(torch.randn(shape, generator=generator))
        for shape in ((7, 3), (5,), (2,))
    ]


def test_steps_equal_torch_optim_adam_bit_for_bit():
    ours, theirs = _parameters(0), _parameters(0)
    rates = [0.01, 0.003]

    def make_groups(params):
        return [{"params": params[:2], "lr": rates[0]}, {"params": params[2:], "lr": rates[1]}]

    mine = Adam(make_groups(ours), betas=(0.9, 0.999), eps=1e-15)
    reference = torch.optim.Adam(make_groups(theirs), betas=(0.9, 0.999), eps=1e-15, foreach=False)
    generator = torch.Generator().manual_seed(1)
    for step in range(30):
        for group in (*mine.param_groups, *reference.param_groups):
            group["lr"] *= 0.97  # rates that change between steps, as a fit's schedule does
        mine.zero_grad(set_to_none=True)
        reference.zero_grad(set_to_none=True)
        weights = [torch.randn(p.shape, generator=generator) for p in ours]
        trained = 2 if step < 10 else 3  # the last parameter has no gradient at first: skipped
        for params in (ours, theirs):
            sum(
                ((p * w) ** 2).sum() for p, w in zip(params[:trained], weights, strict=False)
            ).backward()
        mine.step()
        reference.step()
        for a, b in zip(ours, theirs, strict=True):
            assert torch.equal(a, b), f"step {step}"
    assert float(mine.state[ours[2]][0]) == 20.0  # its own step count


def test_a_fit_does_not_import_the_compiler():
    # torch.optim imports torch._dynamo when an optimiser is built: ~2 s of a fresh process.
    code = (
        "import sys, torch\n"
        "from napari_sgi.core.fit import fit\n"
        "from napari_sgi.core.presets import FitConfig\n"
        "fit(torch.rand(1, 16, 16), FitConfig(iterations=4, levels=2, feature_dim=2,"
        " gaussians_per_seed=2, refine=0.25))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
