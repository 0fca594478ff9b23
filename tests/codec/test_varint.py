import pytest
from hypothesis import given
from hypothesis import strategies as st

from napari_sgi.codec.varint import decode_uvarint, encode_uvarint


@given(st.integers(0, 2**64 - 1), st.binary(max_size=4))
def test_round_trip_with_a_prefix_and_trailing_bytes(value, tail):
    data = b"ab" + encode_uvarint(value) + tail
    assert decode_uvarint(data, 2) == (value, len(data) - len(tail))


@pytest.mark.parametrize(
    ("value", "encoded"), [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02")]
)
def test_known_encodings(value, encoded):
    assert encode_uvarint(value) == encoded


@pytest.mark.parametrize("data", [b"", b"\x80", b"\xff" * 11, b"\x80\x00", b"\xff" * 9 + b"\x7f"])
def test_bad_varints_are_refused(data):
    with pytest.raises(ValueError):
        decode_uvarint(data, 0)


@pytest.mark.parametrize("value", [-1, 2**64])
def test_out_of_range_values_are_refused(value):
    with pytest.raises(ValueError):
        encode_uvarint(value)
