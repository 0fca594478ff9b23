"""Fitting configurations and the named presets ``paper``, ``default`` and ``fast``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class FitConfig:
    """How to fit one image.

    Parameters
    ----------
    iterations
        Adam steps over all pyramid levels; every schedule is a fraction of this number.
    levels
        Pyramid levels L (fitting runs from 1/2^(L-1) to full resolution).
    feature_dim
        F, features per seed.
    gaussians_per_seed
        K, Gaussians (offsets) per seed.
    lmbda
        Weight of the rate term: larger means smaller files and lower quality.
    density
        Gaussians per full-resolution pixel, used when ``seeds`` is not given.
    seeds
        Number of seeds; overrides ``density``.
    rng_seed
        Seeds the jittered grid, the initial weights, the noise and the rate subsets.
    rate_subset
        Fraction of seeds whose rate is estimated at each step of the rate phase.
    grid_levels
        Levels of the binary hash grid (at most 12); 0: no grid and no context MLP, one learned
        distribution per attribute for every seed; None picks them from the seed count (at least
        six), so that a small image does not carry the 250,000-bit grid made for 51-megapixel
        ones.
    attribute_lr_scale
        Multiplies the learning rates of the seed features and offsets: a short run needs larger
        steps to get as far as the paper's 15000.
    distortion
        ``"l1"`` (the paper's mean absolute error) or ``"mse"`` (mean squared error, what PSNR
        measures). With ``"mse"`` the distortion is about 30x smaller at these qualities, so
        comparable ``lmbda`` values are about 30x smaller too.
    refine
        Fraction of ``iterations`` spent at the end on quantisation-aware refinement
        (:mod:`.refine`): training on the rounded attributes that the file stores. 0: none.
    """

    iterations: int = 4000
    levels: int = 3
    feature_dim: int = 50
    gaussians_per_seed: int = 10
    lmbda: float = 0.001
    density: float = 0.07
    seeds: int | None = None
    rng_seed: int = 0
    rate_subset: float = 0.05
    grid_levels: int | None = None
    attribute_lr_scale: float = 1.0
    distortion: str = "l1"
    refine: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "iterations": self.iterations >= 1,
            "levels": 1 <= self.levels <= 8,
            "feature_dim": self.feature_dim >= 1,
            "gaussians_per_seed": self.gaussians_per_seed >= 1,
            "lmbda": self.lmbda >= 0,
            "density": self.density > 0,
            "seeds": self.seeds is None or self.seeds >= 1,
            "rate_subset": 0 < self.rate_subset <= 1,
            "grid_levels": self.grid_levels is None or 0 <= self.grid_levels <= 12,
            "attribute_lr_scale": self.attribute_lr_scale > 0,
            "distortion": self.distortion in ("l1", "mse"),
            "refine": 0 <= self.refine < 1 and self.refine_steps < self.iterations,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ValueError(f"invalid fit configuration: {values}")

    @property
    def refine_steps(self) -> int:
        """Steps of the refinement at the end of the run (part of ``iterations``).

        Examples
        --------
        >>> FitConfig(iterations=12000, refine=0.04).refine_steps
        480
        """
        return round(self.refine * self.iterations)

    def with_overrides(self, **overrides) -> FitConfig:
        """A copy with the given fields changed; ``None`` values leave a field as it is."""
        unknown = set(overrides) - set(asdict(self))
        if unknown:
            raise TypeError(f"unknown fit option(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, FitConfig] = {
    # The paper's settings (15000 steps, L=3, F=50, K=10, lambda=0.001) at the paper's density
    # (3.5 M Gaussians for a 51-megapixel image).
    "paper": FitConfig(iterations=15000, grid_levels=12),
    # Same model, a quarter of the steps, 8x larger steps on the seed attributes (of 1, 3, 4, 6
    # and 8 on the sample images, 8 was best on the RGB image and within 0.05 dB of the best on
    # the others; docs/benchmarks.md, "fit").
    "default": FitConfig(iterations=4000, attribute_lr_scale=8.0),
    # A quick look on a laptop.
    "fast": FitConfig(iterations=800, feature_dim=24, attribute_lr_scale=8.0),
    # Small files (0.1-0.5 bpp on a 512x512 image): few features, few seeds finely quantised, no
    # hash-grid context (its weights cost more than it saves at this size), and MSE, what PSNR
    # measures. So few Gaussians fit fast: 12000 steps gave +0.1 to +0.4 dB over 4000 at equal
    # size, and 500 more steps of refinement on the rounded attributes +0.06 to +0.13 dB
    # (docs/benchmarks.md, "rd"; docs/method.md, "refinement").
    "compact": FitConfig(
        iterations=12500,
        feature_dim=4,
        density=0.01,
        lmbda=2e-5,
        grid_levels=0,
        attribute_lr_scale=8.0,
        distortion="mse",
        refine=0.04,
    ),
}


def get_preset(name: str) -> FitConfig:
    """The configuration of a named preset.

    Examples
    --------
    >>> get_preset("paper").iterations
    15000
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
