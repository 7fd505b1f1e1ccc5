"""Editor pixel layouts <-> numpy arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dni.errors import ImageError
from dni.server import layouts
from dni_client import protocol as P


def random_array(layout: str, width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (height, width, layouts.channels(layout))
    dtype = layouts.dtype(layout)
    if dtype.kind == "u":
        return rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    return rng.random(shape, dtype=np.float32).astype(dtype)


@settings(max_examples=150, deadline=None)
@given(layout=st.sampled_from(sorted(P.LAYOUTS) + sorted(P.LAYOUT_ALIASES)),
       width=st.integers(1, 17), height=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_round_trip(layout: str, width: int, height: int, seed: int) -> None:
    array = random_array(layout, width, height, seed)
    data = layouts.to_bytes(array, layout)
    assert len(data) == P.expected_bytes(layout, width, height)
    back = layouts.to_array(data, width, height, layout)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array)


@pytest.mark.parametrize("layout", ["rgba8", "rgb8", "grey8", "rgba16", "rgba16f",
                                    "rgba32f", "R'G'B'A float", "krita:F32", "krita:F16"])
def test_rgb_order_layouts_decode_without_copying(layout: str) -> None:
    data = bytearray(layouts.to_bytes(random_array(layout, 8, 4), layout))
    array = layouts.to_array(data, 8, 4, layout)
    assert np.shares_memory(array, np.frombuffer(data, np.uint8))
    encoded = layouts.from_array(array, layout)
    assert encoded is array or np.shares_memory(encoded, array)  # no copy back either


def test_krita_u8_is_bgra() -> None:
    pixel = bytes([10, 20, 30, 40])  # B, G, R, A in Krita's memory
    array = layouts.to_array(pixel, 1, 1, "krita:U8")
    assert array.tolist() == [[[30, 20, 10, 40]]]
    assert layouts.to_bytes(array, "krita:U8") == pixel


def test_krita_u16_is_little_endian_bgra() -> None:
    data = bytes([1, 0, 2, 0, 3, 0, 0xFF, 0xFF])  # B=1 G=2 R=3 A=65535
    array = layouts.to_array(data, 1, 1, "krita:U16")
    assert array.dtype == np.uint16 and array.tolist() == [[[3, 2, 1, 65535]]]


def test_gimp_float_is_rgba_float32() -> None:
    values = np.array([0.25, 0.5, 0.75, 1.0], dtype="<f4")
    array = layouts.to_array(values.tobytes(), 1, 1, "R'G'B'A float")
    assert array.dtype == np.float32 and array.ravel().tolist() == [0.25, 0.5, 0.75, 1.0]


def test_aliases_resolve() -> None:
    assert layouts.resolve("krita:U8") == "bgra8"
    assert layouts.resolve("krita:U16") == "bgra16"
    assert layouts.resolve("krita:F16") == "rgba16f"
    assert layouts.resolve("krita:F32") == "rgba32f"
    assert layouts.resolve("R'G'B'A u8") == "rgba8"
    assert layouts.resolve("R'G'B' u8") == "rgb8"
    assert layouts.bytes_per_pixel("krita:F32") == 16


def test_wrong_byte_count_is_a_clear_error() -> None:
    with pytest.raises(ImageError, match=r"4x3 rgba8 needs 48 bytes \(4 per pixel\), got 47"):
        layouts.to_array(bytes(47), 4, 3, "rgba8")
    with pytest.raises(ImageError, match="needs 48"):
        layouts.to_array(bytes(49), 4, 3, "rgba8")


@pytest.mark.parametrize("bad", ["cmyk8", "", None, "RGBA u8", 3])
def test_unknown_layout(bad: object) -> None:
    with pytest.raises(ImageError, match="unknown pixel layout"):
        layouts.to_array(b"", 1, 1, bad)  # type: ignore[arg-type]


def test_empty_image_refused() -> None:
    with pytest.raises(ImageError, match="positive"):
        layouts.to_array(b"", 0, 3, "rgb8")


def test_from_array_checks_channels_and_converts_dtype() -> None:
    with pytest.raises(ImageError, match="4 channels"):
        layouts.from_array(np.zeros((2, 2, 3), np.uint8), "rgba8")
    grey = layouts.from_array(np.zeros((2, 3), np.uint8), "grey8")  # HxW accepted
    assert grey.shape == (2, 3, 1)
    as_half = layouts.from_array(np.full((1, 1, 4), 0.5, np.float32), "krita:F16")
    assert as_half.dtype == np.dtype("<f2") and as_half.tobytes() == \
        np.full(4, 0.5, "<f2").tobytes()


def test_planes() -> None:
    plane = layouts.plane_to_array(bytes(range(6)), 3, 2)
    assert plane.dtype == np.uint8 and plane.shape == (2, 3) and plane[1, 2] == 5
    with pytest.raises(ImageError, match="mask: 3x2 needs 6 bytes"):
        layouts.plane_to_array(bytes(5), 3, 2)
