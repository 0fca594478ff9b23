"""Schedules of a fit, all derived from its own length (no hard-coded iteration windows).

The proportions are the paper's (15000 steps, L=3): the coarsest level gets half the steps of each
finer one (3000/6000/6000); quantisation noise starts after a warm-up of 2% of the run and again
after 4% following each change of level; the rate term and the adaptive steps train in the last 20%.

Learning rates decay exponentially from the reference's initial to the reference's *effective*
final rates: its decay horizon is twice its run, so its rates end at the log-midpoint of the
nominal range, and that is where ours end too. The entropy model (hash grid, context MLP) only
trains in the rate phase, so its rates decay over that phase: the reference decays them over the
whole run, and a short run would otherwise start the entropy model at rates already near the end.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass

START_WARMUP = 0.02
LEVEL_WARMUP = 0.04
RATE_PHASE = 0.20
# Steps per level, relative: the coarsest, each level between, the finest (the paper's 1:2:2).
COARSEST_WEIGHT, MIDDLE_WEIGHT, FINEST_WEIGHT = 1, 2, 2
# How rates move from initial to final (in log space): "exponential" at an even pace, or "cosine",
# slow at both ends (Cool-chic's decay for short runs); benchmarks vary it (bench_ablation).
DECAY_SHAPE = "exponential"

# (initial, final) learning rates per parameter group (sgi-method §8); equal values are constant.
# Final rates are sqrt(initial * nominal final): where the reference's decay stops (see above).
LEARNING_RATES: dict[str, tuple[float, float]] = {
    "offsets": (0.01, 1e-3),
    "features": (0.0075, 0.0075),
    "log_scaling": (0.007, 0.007),
    "mlp_color": (0.008, 6.32e-4),
    "mlp_cov": (0.004, 0.004),
    "hash_grid": (0.005, 2.24e-4),
    "mlp_context": (0.005, 2.24e-4),
}
# Groups that only receive gradients in the rate phase; their rates decay over that phase.
RATE_PHASE_GROUPS = frozenset({"hash_grid", "mlp_context"})


@dataclass(frozen=True)
class Stage:
    """A stretch of steps at one pyramid level: ``[start, stop)`` of the global step count."""

    level: int
    start: int
    stop: int


@dataclass(frozen=True)
class Schedule:
    """Which level, which noise and which learning rates at every step of a run.

    Examples
    --------
    >>> schedule = Schedule(15000, 3)
    >>> [(s.level, s.start, s.stop) for s in schedule.stages]
    [(2, 0, 3000), (1, 3000, 9000), (0, 9000, 15000)]
    >>> schedule.noise(100), schedule.noise(1000), schedule.noise(3300), schedule.noise(12500)
    ('none', 'fixed', 'none', 'adaptive')
    """

    iterations: int
    levels: int
    rate_phase: float = RATE_PHASE  # fraction of the run with the rate term (the last steps)
    constant_decay: float = 1.0  # final / initial rate of the groups the reference holds constant

    @property
    def stages(self) -> list[Stage]:
        if self.levels == 1:
            weights = [1]
        else:
            weights = [COARSEST_WEIGHT] + [MIDDLE_WEIGHT] * (self.levels - 2) + [FINEST_WEIGHT]
        bounds = [
            round(self.iterations * sum(weights[:i]) / sum(weights)) for i in range(self.levels + 1)
        ]
        return [
            Stage(self.levels - 1 - i, bounds[i], bounds[i + 1])
            for i in range(self.levels)
            if bounds[i + 1] > bounds[i]
        ]

    def stage_at(self, step: int) -> Stage:
        for stage in self.stages:
            if step < stage.stop:
                return stage
        return self.stages[-1]

    @property
    def rate_start(self) -> int:
        return self.iterations - math.ceil(self.rate_phase * self.iterations)

    @property
    def rate_steps(self) -> int:
        """Steps of the rate phase, at the end of the run."""
        return self.iterations - self.rate_start

    def noise(self, step: int) -> str:
        """``'none'``, ``'fixed'`` (base steps) or ``'adaptive'`` (context-model steps + rate)."""
        if step >= self.rate_start:
            return "adaptive"
        stage = self.stage_at(step)
        return "none" if step < stage.start + self._warmup(stage) else "fixed"

    def _warmup(self, stage: Stage) -> int:
        """Steps without noise at the start of ``stage``."""
        fraction = START_WARMUP if stage.start == 0 else LEVEL_WARMUP
        return round(fraction * self.iterations)

    def stretch_end(self, step: int) -> int:
        """The first step after ``step`` where the level or the kind of noise changes, or the end.

        A fit that stops a stretch early (:mod:`.settle`) goes on from there.

        Examples
        --------
        >>> schedule = Schedule(15000, 3)
        >>> schedule.stretch_end(0), schedule.stretch_end(300), schedule.stretch_end(9700)
        (300, 3000, 12000)
        >>> schedule.stretch_end(12000)
        15000
        """
        bounds = self._stretch_bounds
        return bounds[bisect.bisect_right(bounds, step)]

    @functools.cached_property
    def _stretch_bounds(self) -> tuple[int, ...]:
        """Where stretches start, and the end, in order (computed once: asked every step)."""
        bounds = {self.rate_start, self.iterations}
        for stage in self.stages:
            bounds.update((stage.start, stage.start + self._warmup(stage)))
        return tuple(sorted(bounds))

    def learning_rate(self, group: str, step: int, scale: float = 1.0) -> float:
        """Learning rate of a parameter group at ``step``, times ``scale``.

        Examples
        --------
        >>> schedule = Schedule(1000, 3)
        >>> [round(schedule.learning_rate("offsets", step), 6) for step in (0, 999)]
        [0.01, 0.001]
        >>> round(schedule.learning_rate("mlp_context", schedule.rate_start), 6)
        0.005
        """
        initial, final = LEARNING_RATES[group]
        if initial == final:
            final = initial * self.constant_decay
        start = self.rate_start if group in RATE_PHASE_GROUPS else 0
        t = min(max((step - start) / max(self.iterations - 1 - start, 1), 0.0), 1.0)
        if DECAY_SHAPE == "cosine":
            t = 0.5 * (1 - math.cos(math.pi * t))
        return scale * math.exp((1 - t) * math.log(initial) + t * math.log(final))
