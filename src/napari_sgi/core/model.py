"""The SGI seed model: seeds on a jittered grid, each decoded by two small MLPs into K 2D Gaussians.

All positions and sizes live in full-resolution pixels. Rendering pyramid level ``s`` maps them with
the exact per-axis ratio of the level's pixel size, so moving to a finer level changes no parameter
(the reference doubles positions and scalings instead, which misaligns odd-sized images).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from napari_sgi.core.entropy import ContextModel, GroupModel, quantize
from napari_sgi.core.image import level_factors, level_shape
from napari_sgi.core.rasterize import rasterize_sum
from napari_sgi.core.seeds import SeedGrid, initial_log_scaling

# How the Gaussians make the image, by the number a model's ``blend`` stores: the paper's plain
# sum, or each Gaussian split by a gate between a normalised blend and the sum (BlendHead).
BLEND_RULES = ("sum", "gated")
# The gated blend's head has (F + 1) 2K weights, coded like the seeds' values: where they would be
# more than this share of a region's stored values, the region draws the plain sum instead. On
# the 256x256 z-slice at 0.1 bpp (a head of 9 % of the values) the head cost 0.74 dB under a size
# target; on IHC at 0.1 bpp (2.3 %) it bought +0.38 (docs/method.md, "A gated blend").
MAX_HEAD_SHARE = 0.04


def blend_rule(wanted: str, seeds: int, feature_dim: int, gaussians_per_seed: int) -> int:
    """The ``blend`` of a region's model: ``wanted`` (a :data:`BLEND_RULES` name), unless it is
    the gated blend and its head would be more than :data:`MAX_HEAD_SHARE` of the values.

    Examples
    --------
    >>> blend_rule("gated", 250, 4, 6), blend_rule("gated", 32, 4, 6), blend_rule("sum", 250, 4, 6)
    (1, 0, 0)
    """
    head = (feature_dim + 1) * 2 * gaussians_per_seed
    values = seeds * (feature_dim + 4 + 2 * gaussians_per_seed)
    if wanted == "gated" and head > MAX_HEAD_SHARE * values:
        return BLEND_RULES.index("sum")
    return BLEND_RULES.index(wanted)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a model: enough, with the weights, to rebuild it anywhere."""

    height: int
    width: int
    channels: int
    feature_dim: int
    gaussians_per_seed: int
    seed_count: int
    rng_seed: int = 0
    levels: int = 3
    grid_levels: int = 12
    grid_features: int = 4
    grid_log2_table: int = 13
    seed_map: str = ""  # seed layout (:mod:`.seed_map`); empty: a uniform jittered grid
    blend: int = 0  # how Gaussians make the image: an index into BLEND_RULES

    def __post_init__(self) -> None:
        for name in (
            "height",
            "width",
            "channels",
            "feature_dim",
            "gaussians_per_seed",
            "seed_count",
            "levels",
            "grid_features",
            "grid_log2_table",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.grid_levels <= 12:
            raise ValueError(f"grid_levels must be 0 to 12, got {self.grid_levels}")
        if self.blend not in range(len(BLEND_RULES)):
            raise ValueError(f"blend must be 0 to {len(BLEND_RULES) - 1}, got {self.blend}")
        if self.seed_map:
            from napari_sgi.core.seed_map import parse_seed_map

            parse_seed_map(self.seed_map, self.height, self.width, self.seed_count)

    @property
    def seed_grid(self) -> SeedGrid:
        return SeedGrid(self.height, self.width, self.seed_count, self.rng_seed, self.seed_map)

    @property
    def gaussians(self) -> int:
        return self.seed_count * self.gaussians_per_seed

    def to_dict(self) -> dict:
        """The header's ``model`` entry; ``seed_map`` and ``blend`` only when set (a
        uniform layout's plain sum writes the fields every reader of the first format version
        knows)."""
        data = asdict(self)
        if not self.seed_map:
            del data["seed_map"]
        if not self.blend:
            del data["blend"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        return cls(**{k: v if k == "seed_map" else int(v) for k, v in data.items()})


@dataclass
class Attributes:
    """The stored values of every seed."""

    features: torch.Tensor  # [N, F]
    log_scaling: torch.Tensor  # [N, 4]
    offsets: torch.Tensor  # [N, K, 2]

    def as_groups(self) -> dict[str, torch.Tensor]:
        """Flat ``[N, D]`` views keyed like the entropy model's groups."""
        return {
            "features": self.features,
            "log_scaling": self.log_scaling,
            "offsets": self.offsets.reshape(len(self.offsets), -1),
        }

    @classmethod
    def from_groups(cls, groups: dict[str, torch.Tensor], gaussians_per_seed: int) -> Attributes:
        offsets = groups["offsets"].reshape(-1, gaussians_per_seed, 2)
        return cls(groups["features"], groups["log_scaling"], offsets)


def _mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_out))


class BlendHead(nn.Module):
    """How each Gaussian enters the image when the plain sum is not the whole story.

    From its seed's features a linear head gives each of the K Gaussians a log-weight ``a`` and
    a gate logit ``b``; with ``w = exp(a) G`` (``G`` the Gaussian's value at the pixel) and
    ``g = sigmoid(b)`` the image is

        sum(g w c) / (sum(g w) + EPS) + sum((1 - g) G c)

    a normalised blend (Image-GS's rule: where two Gaussians meet, their ratio is a logistic
    edge, sharper than a few summed Gaussians draw) for the Gaussians the gate sends there, plus
    the plain sum for the rest (detail added on top). ``EPS`` keeps pixels that the normalised
    Gaussians barely reach near 0; it is fixed, since scaling every ``w`` (the head's biases)
    scales it. The head starts at ``a = b = 0``: every Gaussian half in each part. Both parts are
    sums the one rasterizer draws, as ``2C + 1`` channels (:meth:`expand`, :meth:`compose`).
    """

    EPS = 0.1
    LOG_WEIGHT_LIMIT = 6.0  # |a|: a Gaussian's weight within e^-6 .. e^6 of another's

    def __init__(self, feature_dim: int, gaussians_per_seed: int):
        super().__init__()
        self.linear = nn.Linear(feature_dim, 2 * gaussians_per_seed)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def expand(
        self,
        colors: torch.Tensor,  # [N*K, C] seed-major
        features: torch.Tensor,  # [N, F]
    ) -> torch.Tensor:  # [N*K, 2C + 1]: g w c, g w, (1 - g) c
        k = self.linear.out_features // 2
        heads = self.linear(features)  # [N, 2K]
        limit = self.LOG_WEIGHT_LIMIT
        weight = torch.exp(heads[:, :k].clamp(-limit, limit)).reshape(-1, 1)
        gate = torch.sigmoid(heads[:, k:]).reshape(-1, 1)
        return torch.cat([colors * (weight * gate), weight * gate, colors * (1 - gate)], 1)

    def compose(self, sums: torch.Tensor) -> torch.Tensor:  # [2C + 1, H, W] -> [C, H, W]
        if not sums.requires_grad:
            return _compose_reference(sums, self.EPS)
        return _Compose.apply(sums, self.EPS)


def _compose_reference(sums: torch.Tensor, eps: float) -> torch.Tensor:  # [2C + 1, H, W]
    """``N / (D + eps) + S`` for the stacked sums ``[N, D, S]``: the decoder's image."""
    c = (sums.shape[0] - 1) // 2
    return sums[:c] / (sums[c : c + 1] + eps) + sums[c + 1 :]


class _Compose(torch.autograd.Function):
    """:func:`_compose_reference` with a backward of a few whole-image operations (autograd's
    takes three times as long on a 512x512 RGB image, a third of a training step). The forward
    is the reference's arithmetic, so a fit measures exactly what a decoder renders."""

    @staticmethod
    def forward(ctx, sums: torch.Tensor, eps: float) -> torch.Tensor:
        c = (sums.shape[0] - 1) // 2
        denominator = sums[c : c + 1] + eps  # [1, H, W]
        inverse = 1.0 / denominator
        normalised = sums[:c] / denominator
        ctx.save_for_backward(inverse, normalised)
        return normalised + sums[c + 1 :]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # [C, H, W] -> [2C + 1, H, W]
        inverse, normalised = ctx.saved_tensors
        grad_sums = torch.cat(
            [grad * inverse, -(grad * normalised).sum(0, keepdim=True) * inverse, grad]
        )
        return grad_sums, None


class SGIModel(nn.Module):
    """Seeds with features, offsets and scalings, the colour and covariance MLPs, the context model.

    Examples
    --------
    >>> config = ModelConfig(height=32, width=48, channels=1, feature_dim=8,
    ...                      gaussians_per_seed=4, seed_count=20)
    >>> model = SGIModel(config)
    >>> model.render(level=0).shape
    torch.Size([1, 32, 48])
    """

    def __init__(self, config: ModelConfig, *, initialize_scaling: bool = True):
        super().__init__()
        self.config = config
        n, f, k = config.seed_count, config.feature_dim, config.gaussians_per_seed
        anchors = config.seed_grid.positions()
        self.register_buffer("anchors", torch.from_numpy(anchors), persistent=False)
        self.features = nn.Parameter(torch.zeros(n, f))
        self.offsets = nn.Parameter(torch.zeros(n, k, 2))
        # A decoder overwrites the scalings: it skips the nearest-neighbour search they start from.
        log_scaling = np.zeros(n, np.float32)
        if initialize_scaling:
            log_scaling = initial_log_scaling(anchors, 2.0 ** (config.levels - 1))
        self.log_scaling = nn.Parameter(torch.from_numpy(np.repeat(log_scaling[:, None], 4, 1)))
        self.mlp_color = _mlp(f, f, config.channels * k)
        self.mlp_cov = _mlp(f, f, 3 * k)
        # Tiny initial colours: the first render is black and the fit starts from a sum of zeros.
        nn.init.xavier_uniform_(self.mlp_color[2].weight, gain=0.01)
        nn.init.zeros_(self.mlp_color[2].bias)
        self.context = ContextModel(
            f,
            k,
            grid_levels=config.grid_levels,
            grid_features=config.grid_features,
            grid_log2_table=config.grid_log2_table,
        )
        # Last, so that a plain-sum model draws the same random numbers as before it existed.
        self.mlp_blend = BlendHead(f, k) if config.blend else None

    # -- attributes -------------------------------------------------------------------------------
    def attributes(self) -> Attributes:
        return Attributes(self.features, self.log_scaling, self.offsets)

    def normalized_anchors(self) -> torch.Tensor:  # [N, 2] in [0, 1]
        size = torch.tensor(
            [self.config.width, self.config.height],
            dtype=self.anchors.dtype,
            device=self.anchors.device,
        )
        return self.anchors / size

    def entropy_models(
        self, level: int = 0, seeds: torch.Tensor | None = None
    ) -> dict[str, GroupModel]:
        """Distributions of the attributes of all seeds (or of the indices ``seeds``)."""
        coords = self.normalized_anchors()
        if seeds is not None:
            coords = coords[seeds]
        return self.context(coords, level)

    def quantized_attributes(
        self, level: int = 0, models: dict[str, GroupModel] | None = None
    ) -> Attributes:
        """The attributes rounded with their adaptive steps: what a file stores. ``models``: the
        entropy models of ``level`` when the caller has them already."""
        if models is None:
            models = self.entropy_models(level)
        groups = {
            name: quantize(values, models[name].step)
            for name, values in self.attributes().as_groups().items()
        }
        return Attributes.from_groups(groups, self.config.gaussians_per_seed)

    # -- Gaussians --------------------------------------------------------------------------------
    def mlp_outputs(self, features: torch.Tensor):  # [N, F]
        """The covariance MLP's raw output ``[N, K, 3]`` (two sizes, an angle) and the colours
        ``[N*K, C]``, seed-major."""
        k, c = self.config.gaussians_per_seed, self.config.channels
        return self.mlp_cov(features).reshape(-1, k, 3), self.mlp_color(features).reshape(-1, c)

    def gaussians(self, attributes: Attributes | None = None):
        """Decode seeds into Gaussians in full-resolution pixels.

        Returns
        -------
        means ``[N*K, 2]``, conics ``[N*K, 3]``, colors ``[N*K, C]``, seed-major (index n*K + k).
        """
        attributes = attributes or self.attributes()
        scaling = torch.exp(attributes.log_scaling)  # [N, 4]
        means = self.anchors[:, None, :] + attributes.offsets * scaling[:, None, :2]  # [N, K, 2]
        cov, colors = self.mlp_outputs(attributes.features)
        s1 = scaling[:, None, 2] * torch.sigmoid(cov[..., 0])  # [N, K]
        s2 = scaling[:, None, 3] * torch.sigmoid(cov[..., 1])
        cos, sin = torch.cos(cov[..., 2]), torch.sin(cov[..., 2])
        # Inverse of R diag(s1^2, s2^2) R^T, written directly so no 2x2 inverse is needed.
        inv1, inv2 = 1.0 / (s1 * s1), 1.0 / (s2 * s2)
        conics = torch.stack(
            [
                cos * cos * inv1 + sin * sin * inv2,
                cos * sin * (inv1 - inv2),
                sin * sin * inv1 + cos * cos * inv2,
            ],
            -1,
        )
        return means.reshape(-1, 2), conics.reshape(-1, 3), colors

    def colour_parameters(self) -> list[nn.Parameter]:
        """The colour MLP's parameters and the blend head's, which train together (one
        learning-rate schedule: both set what a Gaussian adds where)."""
        head = list(self.mlp_blend.parameters()) if self.mlp_blend is not None else []
        return list(self.mlp_color.parameters()) + head

    def image_modules(self) -> tuple[str, ...]:
        """Names of the modules that turn seeds into the image, in the file's order."""
        return ("mlp_color", "mlp_cov") + (("mlp_blend",) if self.mlp_blend is not None else ())

    def _draw(self, raster, colors: torch.Tensor, attributes: Attributes | None) -> torch.Tensor:
        """``raster(colors)``, through the blend head when the model has one."""
        if self.mlp_blend is None:
            return raster(colors)
        features = (attributes or self.attributes()).features
        return self.mlp_blend.compose(raster(self.mlp_blend.expand(colors, features)))

    def level_gaussians(self, level: int = 0, attributes: Attributes | None = None):
        """Gaussians in the pixels of pyramid level ``level``: means, conics, colors."""
        means, conics, colors = self.gaussians(attributes)
        mean_factors, conic_factors = level_factors(self.config.height, self.config.width, level)
        scale = torch.tensor(mean_factors, dtype=means.dtype, device=means.device)
        conic_scale = torch.tensor(conic_factors, dtype=conics.dtype, device=conics.device)
        return means * scale, conics * conic_scale, colors

    def render(
        self, level: int = 0, attributes: Attributes | None = None, backend: str = "auto"
    ) -> torch.Tensor:  # [C, H_level, W_level]
        """Render pyramid level ``level`` (0 = full resolution)."""
        height, width = level_shape(self.config.height, self.config.width, level)
        means, conics, colors = self.level_gaussians(level, attributes)

        def raster(colors):
            return rasterize_sum(means, conics, colors, height, width, backend=backend)

        return self._draw(raster, colors, attributes)

    def training_render(
        self, level: int = 0, attributes: Attributes | None = None, backend: str = "auto"
    ) -> torch.Tensor:  # [C, H_level, W_level]
        """:meth:`render`, for a training step: the same image to float32 rounding, faster.

        On the compiled CPU rasterizer the seeds are decoded by one compiled call forward and one
        backward (:mod:`._decode_cpu`) instead of some sixty small torch operations; elsewhere
        this is :meth:`render`. A file's decoder, and a fit measuring what it stores, use
        :meth:`render`.
        """
        from napari_sgi.core.rasterize import cpu_kernel_available

        fast = (
            backend in ("auto", "cpu")
            and self.features.device.type == "cpu"
            and self.features.dtype == torch.float32
            and cpu_kernel_available()
        )
        if not fast:
            return self.render(level, attributes, backend)
        from napari_sgi.core._decode_cpu import level_gaussians_cpu
        from napari_sgi.core._raster_cpu import rasterize_sum_cpu

        height, width = level_shape(self.config.height, self.config.width, level)
        means, conics, colors, bounds = level_gaussians_cpu(self, level, attributes)

        def raster(colors):
            return rasterize_sum_cpu(means, conics, colors, bounds, height, width)

        return self._draw(raster, colors, attributes)

    def describe(self) -> str:
        c = self.config
        return (
            f"{c.seed_count} seeds x {c.gaussians_per_seed} = {c.gaussians} Gaussians, "
            f"F={c.feature_dim}, {c.channels} channel(s), {c.height}x{c.width}"
        )
