"""Layer bytes as 8-bit B, G, R, A for showing on screen, without freezing the editor.

Float layers need a conversion per sample, and a Python loop over a 384² float crop took
0.25–0.34 s on the GUI thread (issue 19). Here each sample is looked up in a table indexed
by its top 16 bits (a half float's bits; a float's upper half, i.e. bfloat16, whose 8
significant bits are all an 8-bit display needs), through `map` at C speed, and the work
is cut into slices so a host can run them between GUI events (`steps`).

Pure Python 3.8+, no numpy: it runs inside the editors' own interpreters.
"""

from __future__ import annotations

import array
import struct
import sys
import time
from collections.abc import Iterator

from .pixels import PixelFormat

SLICE_SAMPLES = 1 << 16  # the first slice: about 8 ms of lookups on a slow core
SLICE_SECONDS = 0.02  # later slices grow towards this: short enough not to be felt
_TABLES: dict[tuple[str, bool], bytes] = {}


def _to_u8(value: float, gamma: float) -> int:
    if not value > 0.0:  # also NaN
        return 0
    if value >= 1.0:
        return 255
    return int((value ** gamma if gamma != 1.0 else value) * 255.0 + 0.5)


def _table_values(sample: str) -> Iterator[float]:
    """The float value of every 16-bit index, in index order."""
    indices = array.array("H", range(1 << 16))
    if sys.byteorder != "little":
        indices.byteswap()
    if sample == "e":
        yield from struct.unpack(f"<{1 << 16}e", indices.tobytes())
        return
    # f32: the index is the upper half; the lower half is zero.
    words = array.array("I", (i << 16 for i in range(1 << 16)))
    yield from memoryview(words.tobytes()).cast("f")


def _table_steps(sample: str, linear: bool) -> Iterator[None]:
    """Build (in slices) the 65,536-entry table for one sample type and gamma."""
    key = (sample, linear)
    if key in _TABLES:
        return
    gamma = 1.0 / 2.2 if linear else 1.0
    table = bytearray(1 << 16)
    for i, value in enumerate(_table_values(sample)):
        table[i] = _to_u8(value, gamma)
        if i % 16384 == 16383:
            yield
    _TABLES[key] = bytes(table)


def _upper_halves(data: bytes | memoryview, sample: str) -> memoryview:
    """The 16-bit table index of every sample (little-endian data, as the editors send);
    a view, not a copy."""
    halves = memoryview(data).cast("B")
    if sys.byteorder != "little":  # build a byte-swapped copy once
        swapped = array.array("H")
        swapped.frombytes(bytes(data))
        swapped.byteswap()
        halves = memoryview(swapped.tobytes()).cast("B")
    view = halves.cast("H")
    return view[1::2] if sample == "f" else view


def _rgba_to_bgra(rgba: bytes) -> bytes:
    out = bytearray(rgba)
    out[0::4], out[2::4] = rgba[2::4], rgba[0::4]
    return bytes(out)


def bgra8_steps(pixels: bytes, fmt: PixelFormat, linear: bool = False,
                slice_samples: int = SLICE_SAMPLES) -> Iterator[bytes | None]:
    """Yields None between slices of work, then the B, G, R, A bytes (last item).

    8-bit layers pass through; 16-bit ones keep their high bytes (one slicing copy);
    half and float layers go through the lookup table, with the sRGB-like 1/2.2 gamma
    when `linear` (a linear-light profile would look dark otherwise).
    """
    if fmt.sample == "B":
        yield bytes(pixels) if fmt.channel_order == "BGRA" else _rgba_to_bgra(bytes(pixels))
        return
    if fmt.sample == "H":
        high = bytes(pixels[1::2])  # little-endian: the high byte of each sample
        yield high if fmt.channel_order == "BGRA" else _rgba_to_bgra(high)
        return
    yield None  # nothing heavy before the first pause
    yield from _table_steps(fmt.sample, linear)
    table = _TABLES[(fmt.sample, linear)]
    indices = _upper_halves(pixels, fmt.sample)
    parts, start, size = [], 0, slice_samples
    while start < len(indices):
        began = time.perf_counter()
        parts.append(bytes(map(table.__getitem__, indices[start:start + size])))
        start += size
        # Fewer, longer slices on a fast machine: each pause costs an event-loop round trip.
        spent = max(time.perf_counter() - began, 1e-4)
        size = int(min(max(size * SLICE_SECONDS / spent, slice_samples), 1 << 20))
        yield None
    rgba = b"".join(parts)
    yield rgba if fmt.channel_order == "BGRA" else _rgba_to_bgra(rgba)


def to_bgra8(pixels: bytes, fmt: PixelFormat, linear: bool = False) -> bytes:
    """All at once (scripts, tests, small images)."""
    result = b""
    for item in bgra8_steps(pixels, fmt, linear):
        if item is not None:
            result = item
    return result
