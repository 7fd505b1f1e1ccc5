"""Cutting an image into overlapping tiles and feathering them back together.

Tile cores partition the image on a grid. Each tile is run on its core plus `pad`
pixels of context on every side; its result is kept over the core plus a band of
`pad // 2` pixels, and neighbouring results are cross-faded across that band with
linear ramps that sum to one. For a network whose receptive-field radius is at most
`pad // 2` the tiled result therefore equals the untiled one; for networks with a
global component (instance norm) the ramps hide the seams.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]  # y0, y1, x0, x1


@dataclass(frozen=True)
class Tile:
    src: Box  # input region the network sees
    dst: Box  # output region this tile contributes to (output coordinates)
    ramp_y: np.ndarray  # weights along dst rows
    ramp_x: np.ndarray  # weights along dst columns

    def weights(self) -> np.ndarray:
        return self.ramp_y[:, None] * self.ramp_x[None, :]


def _axis(length: int, tile: int, pad: int, scale: int,
          ) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
    """Per tile along one axis: src start/end (input), dst start/end (output), ramp."""
    band = pad // 2
    starts = list(range(0, length, tile))  # tile is already balanced for this length
    for index, start in enumerate(starts):
        end = min(start + tile, length)
        first, last = index == 0, index == len(starts) - 1
        src0, src1 = max(0, start - pad), min(length, end + pad)
        dst0 = 0 if first else (start - band) * scale
        dst1 = length * scale if last else (end + band) * scale
        centres = np.arange(dst0, dst1, dtype=np.float64) + 0.5
        ramp = np.ones(dst1 - dst0, dtype=np.float64)
        width = 2.0 * band * scale
        if not first:
            if width:
                ramp *= np.clip((centres - (start - band) * scale) / width, 0.0, 1.0)
        if not last:
            if width:
                ramp *= np.clip(((end + band) * scale - centres) / width, 0.0, 1.0)
        yield src0, src1, dst0, dst1, ramp.astype(np.float32)


def balanced(length: int, tile: int, align: int) -> int:
    """The smallest aligned step that covers `length` in as few tiles as `tile` allows:
    2048 px with tiles of at most 1600 become two tiles of 1024, not 1600 + 448."""
    count = -(-length // tile)
    step = -(-length // count)
    return -(-step // align) * align


def plan_tiles(height: int, width: int, tile: int, pad: int, scale: int = 1,
               align: int = 1) -> list[Tile]:
    """Tiles of at most `tile` pixels covering a height x width image."""
    tile = max(align, tile // align * align)
    pad = pad // align * align
    if height <= tile and width <= tile:
        pad = 0
    rows = list(_axis(height, balanced(height, tile, align), pad, scale))
    cols = list(_axis(width, balanced(width, tile, align), pad, scale))
    return [
        Tile((sy0, sy1, sx0, sx1), (dy0, dy1, dx0, dx1), ry, rx)
        for sy0, sy1, dy0, dy1, ry in rows
        for sx0, sx1, dx0, dx1, rx in cols
    ]
