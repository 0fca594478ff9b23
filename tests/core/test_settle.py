import pytest

from napari_sgi.core.schedule import Schedule
from napari_sgi.core.settle import Settling, settle_window


def test_a_stretch_settles_once_a_window_falls_less_than_the_tolerance():
    settling = Settling(window=3, tolerance=0.05)
    falling = [10.0, 10.0, 10.0, 8.0, 8.0, 8.0, 7.0, 7.0, 7.0]  # -20 %, then -12.5 %
    assert not any(settling.update(loss) for loss in falling)
    flat = [6.9, 6.9]
    assert not any(settling.update(loss) for loss in flat)
    assert settling.update(6.9)  # -1.4 %: settled, at the window's last step only


def test_a_rising_loss_settles_and_restart_forgets():
    settling = Settling(window=2, tolerance=0.0)
    assert [settling.update(x) for x in (1.0, 1.0, 1.1, 1.1)] == [False, False, False, True]
    settling.restart()
    assert [settling.update(x) for x in (1.1, 1.1)] == [False, False]  # one window: no verdict


@pytest.mark.parametrize("window, tolerance", [(0, 0.01), (10, -0.1)])
def test_invalid_settling_is_refused(window, tolerance):
    with pytest.raises(ValueError, match="invalid settling"):
        Settling(window, tolerance)


def test_windows_scale_with_the_run():
    assert settle_window(12000) == 240
    assert settle_window(10) == 50


@pytest.mark.parametrize("iterations, levels", [(15000, 3), (12000, 4), (97, 2), (40, 1)])
def test_stretches_hold_one_level_and_one_noise(iterations, levels):
    schedule = Schedule(iterations, levels)
    step, seen = 0, 0
    while step < iterations:
        end = schedule.stretch_end(step)
        assert step < end <= iterations
        kinds = {(schedule.stage_at(s).level, schedule.noise(s)) for s in range(step, end)}
        assert len(kinds) == 1, (step, end, kinds)
        if end < iterations:  # the next stretch differs: no boundary is missed
            assert (schedule.stage_at(end).level, schedule.noise(end)) not in kinds
        seen += end - step
        step = end
    assert seen == iterations
