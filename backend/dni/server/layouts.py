"""The editors' native pixel layouts <-> numpy HxWxC arrays in RGB(A) order.

Krita hands out U8/U16 layers as B, G, R, A and F16/F32 layers as R, G, B, A; GIMP asks
babl for "R'G'B'A u8", "R'G'B'A float" and friends. The table of layouts lives in
`dni_client.protocol` (the client computes byte counts from it without numpy); this module
adds the numpy side. Layouts already in RGB(A) order decode without copying
(`np.frombuffer`: a read-only view of the received frame); BGRA needs one reordering copy.

It lives with the server (and `dni apply --server`): the engine itself works on arrays and
never sees the wire format.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dni_client.protocol import LAYOUTS, ProtocolError, canonical_layout

from ..errors import ImageError

_DTYPES = {"u8": np.dtype("u1"), "u16": np.dtype("<u2"), "f16": np.dtype("<f2"),
           "f32": np.dtype("<f4")}
_BGRA_TO_RGBA = [2, 1, 0, 3]  # the same permutation goes back


def names() -> list[str]:
    return sorted(LAYOUTS)


def resolve(layout: str) -> str:
    """Canonical name for a layout or editor alias; ImageError if unknown."""
    try:
        return canonical_layout(layout)
    except ProtocolError as exc:
        raise ImageError(exc.message) from None


def dtype(layout: str) -> np.dtype:
    return _DTYPES[LAYOUTS[resolve(layout)][2]]


def channels(layout: str) -> int:
    return LAYOUTS[resolve(layout)][0]


def bytes_per_pixel(layout: str) -> int:
    channel_count, size, _, _ = LAYOUTS[resolve(layout)]
    return channel_count * size


def to_array(data: Any, width: int, height: int, layout: str) -> np.ndarray:
    """Pixels in `layout` (any bytes-like object) as an HxWxC array, RGB(A) order.

    Zero-copy (a read-only view of `data`) unless the layout is BGRA.
    """
    name = resolve(layout)
    channel_count, size, sample, order = LAYOUTS[name]
    if width < 1 or height < 1:
        raise ImageError(f"image size must be positive, got {width}x{height}")
    need = width * height * channel_count * size
    with memoryview(data) as view:
        got = view.nbytes
    if got != need:
        raise ImageError(f"{width}x{height} {name} needs {need} bytes "
                         f"({channel_count * size} per pixel), got {got}")
    array = np.frombuffer(data, dtype=_DTYPES[sample]).reshape(height, width, channel_count)
    if order == "BGRA":
        array = array[..., _BGRA_TO_RGBA]
    if not array.dtype.isnative:  # only on big-endian hosts
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def from_array(array: np.ndarray, layout: str) -> np.ndarray:
    """An HxWxC RGB(A) array as a C-contiguous array whose bytes are `layout`.

    The array's dtype and channel count must match the layout (the engine returns the
    input's); the result supports the buffer protocol, so it can be sent without a copy.
    """
    name = resolve(layout)
    channel_count, _, sample, order = LAYOUTS[name]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != channel_count:
        raise ImageError(f"{name} needs {channel_count} channels, the array has shape "
                         f"{array.shape}")
    if array.dtype != _DTYPES[sample]:
        array = array.astype(_DTYPES[sample])
    if order == "BGRA":
        array = array[..., _BGRA_TO_RGBA]
    return np.ascontiguousarray(array)


def to_bytes(array: np.ndarray, layout: str) -> bytes:
    return from_array(array, layout).tobytes()


def plane_to_array(data: Any, width: int, height: int, what: str = "mask") -> np.ndarray:
    """A one-byte-per-pixel plane (selection mask, strength map, 0-255) as an HxW uint8
    view of `data`; the engine reads 0 as 0.0 and 255 as 1.0."""
    with memoryview(data) as view:
        got = view.nbytes
    if got != width * height:
        raise ImageError(f"{what}: {width}x{height} needs {width * height} bytes "
                         f"(one per pixel), got {got}")
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width)
