"""Fitting configurations: the named presets, and the choices made from the image itself.

``default`` is our best rate-distortion mode: the ``compact`` model (few features, few finely
quantised seeds, MSE, soft rounding in the rate phase, refinement) with its seeds placed where
the image has detail (:mod:`.seed_map`), K, the pyramid levels and λ chosen from the image
(:func:`configure`), and an early stop for stretches of the fit that have settled.
``fast`` is the same at a quarter of the steps, for a quick look. ``paper`` is the paper's F=50
model, kept to reproduce the paper: it loses to JPEG at equal size on images of a few
megapixels (its weights alone cost 0.8 bpp on a 512x512 RGB image).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


def _positive_or_none(value: float | None, upper: float = float("inf")) -> bool:
    if value is None:
        return True
    try:
        return 0 < float(value) <= upper and not isinstance(value, bool)
    except (TypeError, ValueError):
        return False


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
    rate_phase
        Fraction of the main fit (before refinement) at its end that trains with the rate term,
        the entropy model and its adaptive quantisation noise (:mod:`.schedule`).
    lr_decay
        Final fraction of the learning rates that the reference holds constant (seed features,
        scalings, covariance MLP); they decay exponentially over the run. 1: constant.
    seed_layout
        ``"uniform"``: seeds on one jittered grid; ``"adaptive"``: more seeds where the image has
        fine detail, from a small map stored with the model (:mod:`.seed_map`).
    blend
        How the Gaussians make the image: ``"sum"``, the paper's plain sum; ``"gated"``, each
        Gaussian split by a learned gate between a normalised blend and the sum
        (:class:`.model.BlendHead`), which draws edges with fewer Gaussians.
    soft_round
        Train the rate phase on soft-rounded attributes (:data:`.entropy.SOFT_ROUND`, C3's
        annealed soft rounding) rather than on attributes plus uniform noise. Not used while
        λ is steered to a target quality (:func:`.fit.steered_config`).
    settle
        Early stop (:mod:`.settle`): the least relative fall of the mean loss from one window of
        steps to the next that keeps a stretch of the fit (a pyramid level, the rate phase)
        going; once it falls less, the fit moves on to the next stretch. 0: every step runs.
        Not used while λ is steered to a target size or quality.
    target_bpp, target_psnr
        A target instead of a density (at most one): the file's bits per pixel over all channels,
        or the decoded PSNR in dB. The encoder chooses the density from short pilot fits and
        steers λ to the size (:mod:`.targets`, :mod:`.rate_control`).
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
    rate_phase: float = 0.2
    lr_decay: float = 1.0
    seed_layout: str = "uniform"
    blend: str = "sum"
    soft_round: bool = True
    settle: float = 0.0
    target_bpp: float | None = None
    target_psnr: float | None = None

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
            "rate_phase": 0 < self.rate_phase <= 1,
            "lr_decay": 0 < self.lr_decay <= 1,
            "seed_layout": self.seed_layout in ("uniform", "adaptive"),
            "blend": self.blend in ("sum", "gated"),  # core.model.BLEND_RULES
            "settle": 0 <= self.settle < 1,
            "soft_round": isinstance(self.soft_round, bool),
            "target_bpp": _positive_or_none(self.target_bpp),
            "target_psnr": _positive_or_none(self.target_psnr, 100.0),
        }
        if self.target_bpp is not None and self.target_psnr is not None:
            raise ValueError("give one target: a size (target_bpp) or a quality (target_psnr)")
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

    def to_header(self, base: FitConfig | None = None) -> dict:
        """The fields that differ from ``base`` (by default :class:`FitConfig`'s defaults): what a
        file's header records (every byte of a small file counts). ``FitConfig(**header)`` gives
        the configuration back; with a ``base``, ``dataclasses.replace(base, **header)`` does
        (``with_overrides`` would skip a field recorded as None).

        Examples
        --------
        >>> FitConfig(iterations=100, seed_layout="adaptive").to_header()
        {'iterations': 100, 'seed_layout': 'adaptive'}
        >>> FitConfig(**FitConfig(lmbda=0.0).to_header()) == FitConfig(lmbda=0.0)
        True
        """
        defaults = asdict(base if base is not None else FitConfig())
        return {name: value for name, value in asdict(self).items() if value != defaults[name]}


# Small files (0.1-0.7 bpp on a 512x512 image): few features, few seeds finely quantised, no
# hash-grid context (its weights cost more than it saves at this size), and MSE, what PSNR
# measures. So few Gaussians fit fast: 12000 steps gave +0.1 to +0.4 dB over 4000 at equal size,
# and 500 more steps of refinement on the rounded attributes +0.06 to +0.13 dB
# (docs/benchmarks.md, "rd"; docs/method.md, "refinement").
_COMPACT = FitConfig(
    iterations=12500,
    feature_dim=4,
    density=0.01,
    lmbda=2e-5,
    grid_levels=0,
    attribute_lr_scale=8.0,
    distortion="mse",
    refine=0.04,
)

# Seeds placed where the detail is (core/seed_map.py): +0.04 to +0.08 dB BD-PSNR on the three
# sample images and +0.25 dB on a half-empty field (docs/benchmarks.md, "ablation"). Stretches of
# the fit end once their loss falls by less than 0.3 % a window (core/settle.py): 12500-step fits
# took 0.62x (nuclei), 0.82x (IHC) and 0.91x (z-slice) the time, within 0.02 dB and 1 % in size
# (docs/benchmarks.md, "time-quality"); 1 % saved more and cost up to 0.1 dB on IHC.
_ADAPTIVE = replace(_COMPACT, seed_layout="adaptive", settle=0.003)
# Each Gaussian split by a learned gate between a normalised blend and the plain sum
# (core/model.BlendHead), where the gate's head is a small part of a region's values: BD-PSNR
# +0.54 dB on IHC, +0.01 on nuclei, -0.03 on the 256x256 z-slice (docs/method.md, "A gated
# blend").
_BEST = replace(_ADAPTIVE, blend="gated")

PRESETS: dict[str, FitConfig] = {
    # Our best rate-distortion mode; K, levels and λ are then chosen from the image (configure).
    "default": _BEST,
    # The same at a quarter of the steps: a quick look on a laptop.
    "fast": replace(_BEST, iterations=3000),
    # The compact model with exactly these settings, whatever the image (the RD tables' series).
    "compact": _COMPACT,
    # The paper's settings, to reproduce the paper (15000 steps, L=3, F=50, K=10, λ=0.001, 3.5 M
    # Gaussians for a 51-megapixel image). Not a small-file codec on images of a few megapixels.
    "paper": FitConfig(iterations=15000, grid_levels=12, soft_round=False),
}

# Presets whose K, levels and λ follow the image (configure); the others are used as they are.
IMAGE_ADAPTED = frozenset({"default", "fast"})


# A factor on the image's λ (1: the measured choice below); benchmarks vary it (bench_ablation).
LAMBDA_SCALE = 1.0


def image_choices(height: int, width: int, channels: int) -> dict:
    """K, pyramid levels and λ for an image, from its size and channel count.

    From the measured variations of ``compact`` (docs/method.md): 4 levels gave +0.11 to +0.18 dB
    at equal size on the 512x512 IHC image and the 256x256 z-slice and were neutral on the
    512x512 nuclei (0.00 / -0.05); 6 Gaussians a seed +0.16 to +0.30 dB on the z-slice and +0.03
    on nuclei but -0.08 on RGB IHC; λ=4e-5 +0.14 on IHC, -0.11 on single-channel nuclei. So: 4
    levels once the coarsest level keeps 32 pixels a side, K=6 on one channel, λ=4e-5 on colour.

    Examples
    --------
    >>> image_choices(512, 512, 3)
    {'gaussians_per_seed': 10, 'levels': 4, 'lmbda': 4e-05}
    >>> image_choices(200, 300, 1)
    {'gaussians_per_seed': 6, 'levels': 3, 'lmbda': 2e-05}
    """
    return {
        "gaussians_per_seed": 6 if channels == 1 else 10,
        "levels": 4 if min(height, width) >= 256 else 3,
        "lmbda": LAMBDA_SCALE * (4e-5 if channels >= 3 else 2e-5),
    }


def configure(preset: str, height: int, width: int, channels: int, **overrides) -> FitConfig:
    """The configuration to fit an image of this size with: the preset, the image's own choices
    (for ``default`` and ``fast``), then the caller's ``overrides`` (``None`` leaves a field).

    Examples
    --------
    >>> configure("default", 256, 256, 1).gaussians_per_seed
    6
    >>> configure("default", 256, 256, 1, gaussians_per_seed=10, levels=None).levels
    4
    >>> configure("compact", 256, 256, 1).gaussians_per_seed
    10
    """
    config = get_preset(preset)
    if preset in IMAGE_ADAPTED:
        config = config.with_overrides(**image_choices(height, width, channels))
    return config.with_overrides(**overrides)


def get_preset(name: str) -> FitConfig:
    """The configuration of a named preset.

    Examples
    --------
    >>> get_preset("paper").iterations, get_preset("default").feature_dim
    (15000, 4)
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def fit_record(preset: str, config: FitConfig, height: int, width: int, channels: int) -> dict:
    """How a file records its fit: the preset's name and what differs from what the preset chose
    for this image (a target, the user's options). A `default` fit records 2-4 fields instead of
    12-14, 25-40 bytes less in the header of a small file; :func:`fit_from_record` reads it back.

    Examples
    --------
    >>> config = configure("default", 256, 256, 1, target_bpp=0.1)
    >>> fit_record("default", config, 256, 256, 1)
    {'preset': 'default', 'target_bpp': 0.1}
    """
    chosen = configure(preset, height, width, channels)
    return {"preset": preset, **config.to_header(chosen)}


def fit_from_record(record: dict, height: int, width: int, channels: int) -> FitConfig:
    """The configuration a header's fit record describes, as this version of napari-sgi chooses
    a preset's settings (the header's ``encoder_version`` says which version wrote it). A record
    without a preset (files of earlier versions) lists the fields that differ from
    :class:`FitConfig`'s defaults.

    Examples
    --------
    >>> fit_from_record({"preset": "fast", "target_bpp": 0.1}, 256, 256, 1).iterations
    3000
    >>> fit_from_record({"iterations": 100}, 256, 256, 1).feature_dim
    50
    """
    fields = dict(record)
    preset = fields.pop("preset", None)
    if preset is None:
        return FitConfig(**fields)
    return replace(configure(preset, height, width, channels), **fields)
