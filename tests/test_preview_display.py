"""What the dialog shows: layer bytes to 8-bit display pixels in slices (a float crop no
longer freezes the editor), and which part of the image the preview covers."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest

from dni_client import display
from dni_client import pixels as px
from dni_client.geometry import Rect
from dni_client.preview_area import MAX_CROP, PreviewArea


def _reference_bgra8(values: np.ndarray, linear: bool) -> bytes:
    """The straightforward conversion, with numpy: clip, gamma, round, RGBA -> BGRA."""
    v = np.nan_to_num(values.astype(np.float64), nan=0.0).clip(0.0, 1.0)
    if linear:
        v = v ** (1 / 2.2)
    u8 = np.floor(v * 255.0 + 0.5).astype(np.uint8).reshape(-1, 4)
    return u8[:, [2, 1, 0, 3]].tobytes()


@pytest.mark.parametrize("depth", ["F16", "F32"])
@pytest.mark.parametrize("linear", [False, True])
def test_float_layers_convert_like_the_reference(depth: str, linear: bool) -> None:
    rng = np.random.default_rng(4)
    values = rng.uniform(-0.2, 1.2, 64 * 48 * 4).astype(np.float16 if depth == "F16"
                                                         else np.float32)
    values[:8] = [np.nan, np.inf, -np.inf, 0.0, 1.0, 0.5, 1e-8, 0.999]
    out = np.frombuffer(display.to_bgra8(values.astype("<" + values.dtype.str[1:]).tobytes(),
                                         px.KRITA_FORMATS[depth], linear), np.uint8)
    ref = np.frombuffer(_reference_bgra8(values, linear), np.uint8)
    diff = np.abs(out.astype(int) - ref.astype(int))
    # Half floats are looked up exactly; a float's upper 16 bits (bfloat16) can be one
    # step off near the top of a table cell.
    assert diff.max() <= (0 if depth == "F16" else 1), diff.max()
    assert out[0 + 2] == 0 and out[1] == 255  # R = NaN -> 0, G = +inf -> 255 (BGRA order)


def test_integer_layers_pass_through() -> None:
    u8 = bytes(range(256)) * 4
    assert display.to_bgra8(u8, px.KRITA_FORMATS["U8"]) == u8
    u16 = struct.pack("<8H", 0x0102, 0xFF00, 0x1234, 0xFFFF, 0, 1, 0x8000, 0x7FFF)
    assert display.to_bgra8(u16, px.KRITA_FORMATS["U16"]) == bytes(
        [0x01, 0xFF, 0x12, 0xFF, 0, 0, 0x80, 0x7F])


def test_float_work_comes_in_short_slices() -> None:
    """A 384² float crop, as in the dialog: no slice takes long, so the editor's events
    run in between. (Bounded loosely: the machine may be busy.)"""
    values = np.random.default_rng(1).uniform(0, 1, 384 * 384 * 4).astype("<f4").tobytes()
    display.to_bgra8(values[:64], px.KRITA_FORMATS["F32"])  # the table, built once
    slices, longest, last = 0, 0.0, time.perf_counter()
    for item in display.bgra8_steps(values, px.KRITA_FORMATS["F32"]):
        now = time.perf_counter()
        longest, last, slices = max(longest, now - last), now, slices + 1
        if item is not None:
            result = item
    assert len(result) == 384 * 384 * 4 and slices >= 4
    assert longest < 0.25, longest


def test_preview_area_zooms_pans_and_picks_inside_the_image() -> None:
    area = PreviewArea(Rect(0, 0, 4000, 3000), 384, 384, centre=(1000.0, 1000.0))
    assert area.crop() == Rect(808, 808, 384, 384)
    assert area.crop(scale=4) == Rect(952, 952, 96, 96)  # x4: 96 source px fill the view
    area.zoom_by(1)
    assert area.zoom == 2.0 and area.crop() == Rect(904, 904, 192, 192)
    area.zoom_by(-3)
    assert area.zoom == 0.25 and area.crop() == Rect(488, 488, MAX_CROP, MAX_CROP)
    area.zoom_by(-5)
    assert area.zoom == 0.25  # the smallest zoom
    area.set_zoom(1.0)
    area.pan(100, -50)  # the picture moves right and up: the area goes left and down
    assert area.centre == (900.0, 1050.0)
    area.pick(-50, 99999)
    assert area.centre == (0, 3000) and area.crop() == Rect(0, 2616, 384, 384)


def test_preview_area_of_a_small_image_is_the_image() -> None:
    area = PreviewArea(Rect(0, 0, 48, 40), 384, 384)
    assert area.crop() == Rect(0, 0, 48, 40)
    area.zoom_by(2)
    assert area.crop() == Rect(0, 0, 48, 40)  # 96 px wanted, the image is smaller
