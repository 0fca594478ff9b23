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
        """The header's ``model`` entry; ``seed_map`` only when there is one (uniform layouts
        write the fields every reader of the first format version knows)."""
        data = asdict(self)
        if not self.seed_map:
            del data["seed_map"]
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
        return rasterize_sum(means, conics, colors, height, width, backend=backend)

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
        return rasterize_sum_cpu(means, conics, colors, bounds, height, width)

    def describe(self) -> str:
        c = self.config
        return (
            f"{c.seed_count} seeds x {c.gaussians_per_seed} = {c.gaussians} Gaussians, "
            f"F={c.feature_dim}, {c.channels} channel(s), {c.height}x{c.width}"
        )
