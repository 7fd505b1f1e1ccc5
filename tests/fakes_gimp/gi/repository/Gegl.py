"""Fake GEGL: rectangles and pixel buffers that really hold pixels.

A Buffer stores perceptual RGBA as float32 (h, w, 4) and converts on get/set, like GEGL
does through babl, for the formats the plug-in uses. Reads outside the buffer follow the
abyss policy (CLAMP repeats the edge, NONE gives transparent black).
"""

from __future__ import annotations

import enum

import numpy as np


class AbyssPolicy(enum.IntEnum):
    NONE = 0
    CLAMP = 1
    LOOP = 2
    BLACK = 3
    WHITE = 4


class Rectangle:
    def __init__(self, x: int = 0, y: int = 0, width: int = 0, height: int = 0) -> None:
        self.x, self.y, self.width, self.height = int(x), int(y), int(width), int(height)

    @classmethod
    def new(cls, x: int, y: int, width: int, height: int) -> Rectangle:
        return cls(x, y, width, height)

    def __repr__(self) -> str:
        return f"Gegl.Rectangle({self.x}, {self.y}, {self.width}, {self.height})"


# format name -> (channels taken from RGBA, numpy dtype)
FORMATS = {
    "R'G'B'A u8": ("RGBA", np.uint8),
    "R'G'B'A u16": ("RGBA", np.uint16),
    "R'G'B'A half": ("RGBA", np.float16),
    "R'G'B' u8": ("RGB", np.uint8),
    "R'G'B'A float": ("RGBA", np.float32),
    "R'G'B' float": ("RGB", np.float32),
    "Y u8": ("Y", np.uint8),
    "Y' u8": ("Y", np.uint8),
}


def _encode(values: np.ndarray, fmt: str) -> bytes:
    channels, dtype = FORMATS[fmt]
    if channels == "RGB":
        values = values[..., :3]
    elif channels == "Y":
        values = values[..., :1]
    if dtype == np.uint8:
        return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8).tobytes()
    if dtype == np.uint16:
        return np.clip(np.rint(values * 65535.0), 0, 65535).astype("<u2").tobytes()
    return values.astype("<f2" if dtype == np.float16 else "<f4").tobytes()


def _decode(data: bytes, fmt: str, height: int, width: int) -> np.ndarray:
    channels, dtype = FORMATS[fmt]
    n = len(channels)
    wire = {np.uint8: np.uint8, np.uint16: "<u2", np.float16: "<f2"}.get(dtype, "<f4")
    raw = np.frombuffer(bytes(data), dtype=wire)
    if raw.size != width * height * n:
        raise ValueError(f"{len(data)} bytes do not fill {width}x{height} {fmt}")
    raw = raw.reshape(height, width, n).astype(np.float32)
    if dtype == np.uint8:
        raw = raw / 255.0
    elif dtype == np.uint16:
        raw = raw / 65535.0
    out = np.ones((height, width, 4), np.float32)
    if channels == "Y":
        out[..., :3] = raw
    else:
        out[..., :n] = raw
    return out


class Buffer:
    def __init__(self, width: int, height: int) -> None:
        self.data = np.zeros((height, width, 4), np.float32)
        self.flushes = 0
        self.writes: list[tuple[int, int, int, int, str]] = []

    @property
    def width(self) -> int:
        return self.data.shape[1]

    @property
    def height(self) -> int:
        return self.data.shape[0]

    def get_extent(self) -> Rectangle:
        return Rectangle(0, 0, self.width, self.height)

    def get(self, rect: Rectangle, scale: float, format_name: str,
            repeat_mode: AbyssPolicy) -> bytes:
        if scale != 1.0:
            raise NotImplementedError("the fake reads at scale 1 only")
        if format_name not in FORMATS:
            raise ValueError(f"unknown babl format {format_name!r}")
        ys = np.arange(rect.y, rect.y + rect.height)
        xs = np.arange(rect.x, rect.x + rect.width)
        inside = ((ys[:, None] >= 0) & (ys[:, None] < self.height)
                  & (xs[None, :] >= 0) & (xs[None, :] < self.width))
        block = self.data[np.clip(ys, 0, self.height - 1)][:, np.clip(xs, 0, self.width - 1)]
        if repeat_mode != AbyssPolicy.CLAMP:
            block = np.where(inside[..., None], block, 0.0)
        return _encode(block, format_name)

    def set(self, rect: Rectangle, format_name: str, src: bytes) -> None:
        if format_name not in FORMATS:
            raise ValueError(f"unknown babl format {format_name!r}")
        values = _decode(src, format_name, rect.height, rect.width)
        x0, y0 = max(rect.x, 0), max(rect.y, 0)
        x1 = min(rect.x + rect.width, self.width)
        y1 = min(rect.y + rect.height, self.height)
        if x1 > x0 and y1 > y0:
            self.data[y0:y1, x0:x1] = values[y0 - rect.y:y1 - rect.y, x0 - rect.x:x1 - rect.x]
        self.writes.append((rect.x, rect.y, rect.width, rect.height, format_name))

    def flush(self) -> None:
        self.flushes += 1
