import numpy as np
import pytest
import torch

from napari_sgi.core.image import ValueRange, build_pyramid, from_tensor, to_tensor, validate_image


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("channels", [None, 1, 3, 5])
def test_round_trip_keeps_dtype_and_range(dtype, channels):
    rng = np.random.default_rng(0)
    shape = (12, 10) if channels is None else (12, 10, channels)
    if np.dtype(dtype).kind == "f":
        image = (rng.random(shape) * 7 - 3).astype(dtype)
    else:
        info = np.iinfo(dtype)
        image = rng.integers(max(info.min, -500), min(info.max, 3000), shape).astype(dtype)
    value_range = ValueRange.of(image)
    tensor = to_tensor(image, value_range)
    assert tensor.shape == (1 if channels is None else channels, 12, 10)
    assert 0 <= float(tensor.min()) and float(tensor.max()) <= 1
    back = from_tensor(tensor, value_range, image.ndim)
    assert back.dtype == image.dtype and back.shape == image.shape
    np.testing.assert_allclose(
        back, image, rtol=1e-5, atol=1e-5 if np.dtype(dtype).kind == "f" else 0
    )


def test_uint8_uses_the_full_range_and_constant_images_work():
    assert ValueRange.of(np.array([[3, 4]], np.uint8)) == ValueRange(0.0, 255.0, "uint8")
    constant = np.full((8, 8), 7.0, np.float32)
    value_range = ValueRange.of(constant)
    back = from_tensor(to_tensor(constant, value_range), value_range, 2)
    np.testing.assert_array_equal(back, constant)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 5)), "empty"),
        (np.zeros(10), "2D image"),
        (np.zeros((2, 3, 4, 5)), "2D image"),
        (np.zeros((2, 50)), "too small"),
        (np.zeros((8, 8), bool), "dtype"),
        (np.zeros((8, 8), complex), "dtype"),
        (np.array([[np.nan] * 8] * 8), "NaN"),
        (np.full((8, 8), np.inf), "NaN or infinite"),
        (np.zeros((8, 8, 100)), "channels"),
    ],
)
def test_bad_images_raise_clear_errors(image, message):
    with pytest.raises(ValueError, match=message):
        validate_image(image)


def test_pyramid_shapes_and_means():
    image = torch.rand(3, 37, 50)
    pyramid = build_pyramid(image, 3)
    assert [tuple(level.shape) for level in pyramid] == [(3, 37, 50), (3, 18, 25), (3, 9, 12)]
    for level in pyramid[1:]:
        assert abs(float(level.mean()) - float(image.mean())) < 0.02
