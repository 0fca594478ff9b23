"""Early stop: leave a stretch of a fit once its loss has settled.

A fit is a run of stretches (:meth:`.schedule.Schedule.stretch_end`): each pyramid level, with
its warm-up without noise, and the rate phase at the end. Every stretch has a fixed share of the
run, made for the images that need it; on others the loss stops falling well before the stretch
ends, and its last steps buy nothing. :class:`Settling` watches the loss of one stretch in
windows of steps: when a window's mean loss is less than ``tolerance`` (relative) below the
window before, the stretch has settled and the fit moves on to the next one, with the learning
rates the schedule gives there, as if the skipped steps had run.

The decision uses only the fit's own losses, so a fit that is deterministic stays deterministic.
"""

from __future__ import annotations

# Steps per window, as a fraction of the main fit's steps, and at least MIN_WINDOW: the loss of a
# single step carries the training noise and a random subset's rate, so windows are compared by
# their means.
WINDOW_FRACTION = 0.02
MIN_WINDOW = 50


def settle_window(main_steps: int) -> int:
    """Steps per window of a fit with ``main_steps`` steps before refinement.

    Examples
    --------
    >>> settle_window(12000), settle_window(2880)
    (240, 58)
    >>> settle_window(100)
    50
    """
    return max(MIN_WINDOW, round(WINDOW_FRACTION * main_steps))


class Settling:
    """Whether the loss of the current stretch has stopped falling.

    Parameters
    ----------
    window
        Steps per window.
    tolerance
        Least relative fall of the mean loss from one window to the next that keeps the stretch
        going (0.001: the loss must fall by 0.1 % a window).

    Examples
    --------
    >>> settling = Settling(window=2, tolerance=0.01)
    >>> [settling.update(loss) for loss in (4.0, 4.0, 2.0, 2.0, 1.99, 1.99)]
    [False, False, False, False, False, True]
    >>> settling.restart()
    >>> settling.update(1.0)
    False
    """

    def __init__(self, window: int, tolerance: float) -> None:
        if window < 1 or tolerance < 0:
            raise ValueError(f"invalid settling: window={window}, tolerance={tolerance}")
        self.window = window
        self.tolerance = tolerance
        self.restart()

    def restart(self) -> None:
        """Forget the losses seen: a new stretch begins."""
        self._sum = 0.0
        self._count = 0
        self._previous: float | None = None

    def update(self, loss: float) -> bool:
        """Record one step's loss; True when it completes a window that settles the stretch."""
        self._sum += loss
        self._count += 1
        if self._count < self.window:
            return False
        mean = self._sum / self._count
        previous, self._previous = self._previous, mean
        self._sum, self._count = 0.0, 0
        return previous is not None and previous - mean <= self.tolerance * abs(mean)
