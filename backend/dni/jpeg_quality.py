"""How hard an image was JPEG-compressed, as an IJG quality (1-100, Pillow's and libjpeg's
`quality`), for the `dejpeg` family's automatic strength.

* From a JPEG file: its quantisation tables are read (Pillow's `.quantization`, natural
  order) and compared with the standard tables (ITU T.81 Annex K) scaled the IJG way at
  every quality; the closest wins. Exact for files written by libjpeg-based encoders
  (Pillow, GIMP, most software); the nearest IJG quality for other tables.
* From pixels (an editor's layer, a PNG of a JPEG): the 8x8 grid is the offset at which
  most AC coefficients of the blocks are zero (quantisation zeroes them in the encoder's
  own blocks only), then the quantisation steps of a few low-frequency DCT coefficients
  are read off those blocks: decoded JPEG coefficients sit on multiples of their step
  (Fan and de Queiroz, IEEE TIP 2003), so the largest step they all sit on is the one the
  encoder used. Those steps are matched with the scaled standard table like the file's.
  Pixels that were resized, filtered or re-encoded after the JPEG lose that comb, and the
  answer is None. The grid's first guess was blockiness (luma steps across block edges
  against steps elsewhere); on the report's photos it missed the grid of cropped quality-60
  JPEGs that the zero count found, so `blockiness` now only says how visible the blocks
  are (the report compares it before and after the filter).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import WeightsError
from .noise_level import unit_channels

# ITU T.81 Annex K.1, natural (row-major) order: the tables IJG quality 50 uses as they are.
STANDARD_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
STANDARD_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *([99] * 32))
BLOCK = 8
QUALITIES = range(1, 101)
# The DCT coefficients read from pixels (row, column): low frequencies, which keep enough
# non-zero values to show their step even at quality 10.
PROBED = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2), (2, 1), (2, 2))
MAX_BLOCKS = 20_000  # blocks read from pixels: more only costs time
PHASE_BLOCKS = 1_000  # blocks per trial grid position when looking for the grid
ZERO = 0.75  # |coefficient| under this was quantised to zero (pixel rounding adds ~0.35)
# Mean |log(step / table step)| of the steps read against the IJG table they fit best:
# steps from one encoder fit within rounding; steps found by chance do not.
MAX_MISMATCH = 0.12
# Median distance (0-255 DCT units) of the values from the nearest multiple of a step (the
# median, as values from blocks near clipped ones stray): decoded JPEGs measure 0.3-0.5 at
# their own step (pixel rounding) and 0.9 or more one off it.
MAX_RESIDUAL = 0.7
# Smaller steps are indistinguishable from unquantised values (their mean residual is
# step / 4 anyway); step 4 at the probed frequencies is about quality 80.
MIN_STEP, MAX_STEP = 4, 160


@dataclass(frozen=True)
class QualityEstimate:
    quality: int  # IJG quality, 1-100
    source: str  # "quantisation tables" or "pixels"


def scaled_table(base: Sequence[int], quality: int) -> np.ndarray:
    """A standard table at an IJG quality, as libjpeg's jpeg_set_quality writes it for
    baseline JPEG (steps 1-255)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((np.asarray(base) * scale + 50) // 100, 1, 255)


def quality_from_tables(tables: Mapping[int, Sequence[int]]) -> int:
    """The IJG quality whose scaled standard tables are closest to these (luma table 0,
    chroma table 1 when there is one)."""
    if 0 not in tables or len(tables[0]) != BLOCK * BLOCK:
        raise ValueError("a JPEG quantisation table has 64 steps; table 0 is missing")
    luma = np.asarray(tables[0], dtype=np.float64)
    chroma = np.asarray(tables[1], dtype=np.float64) if 1 in tables else None

    def distance(quality: int) -> float:
        d = np.abs(np.log(luma / scaled_table(STANDARD_LUMA, quality))).sum()
        if chroma is not None:
            d += np.abs(np.log(chroma / scaled_table(STANDARD_CHROMA, quality))).sum()
        return float(d)

    return min(QUALITIES, key=distance)


def quality_of_file(path: Path) -> int | None:
    """The quality a JPEG file was saved at, from its tables; None for other formats."""
    with Image.open(path) as img:
        tables = getattr(img, "quantization", None) if img.format == "JPEG" else None
        return quality_from_tables(tables) if tables else None


# -- from pixels ------------------------------------------------------------------------
def luma(image: np.ndarray) -> np.ndarray:
    """JPEG's Y (ITU-R BT.601, full range) in 0-255 units, float64 (H, W)."""
    planes = unit_channels(image).astype(np.float64) * 255.0
    if planes.shape[0] < 3:
        return planes[0]
    return 0.299 * planes[0] + 0.587 * planes[1] + 0.114 * planes[2]


@dataclass(frozen=True)
class Blockiness:
    ratio: float  # mean luma step across the grid's block edges / the median phase's (1 = none)
    phase: tuple[int, int]  # (row, column) where the 8x8 blocks start, 0-7


def _edge_phases(y: np.ndarray, axis: int) -> tuple[float, list[int]]:
    """Luma steps between neighbours along one axis, averaged per position mod 8: the
    strongest position's ratio to the median, and the block starts (just after each
    position) from the strongest edge down."""
    steps = np.abs(np.diff(y, axis=axis)).mean(axis=1 - axis)
    usable = len(steps) // BLOCK * BLOCK
    means = steps[:usable].reshape(-1, BLOCK).mean(axis=0)
    order = [int(i) for i in np.argsort(-means, kind="stable")]
    ratio = float(means[order[0]]) / max(float(np.median(means)), 1e-9)
    return ratio, [(edge + 1) % BLOCK for edge in order]


def blockiness(image: np.ndarray) -> Blockiness:
    """Where the 8x8 grid is and how strongly it shows."""
    y = luma(image)
    if min(y.shape) < 2 * BLOCK:
        return Blockiness(1.0, (0, 0))
    ratio_y, rows = _edge_phases(y, 0)
    ratio_x, columns = _edge_phases(y, 1)
    return Blockiness(math.sqrt(ratio_x * ratio_y), (rows[0], columns[0]))


def _dct_matrix() -> np.ndarray:
    """The orthonormal 8-point DCT-II, JPEG's transform."""
    k = np.arange(BLOCK)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * BLOCK)) * math.sqrt(2 / BLOCK)
    m[0] /= math.sqrt(2)
    return m


def _block_coefficients(y: np.ndarray, clipped: np.ndarray, phase: tuple[int, int],
                        limit: int = MAX_BLOCKS) -> np.ndarray:
    """DCT coefficients (n, 8, 8) of the whole blocks of the grid at `phase`, leaving out
    blocks with clipped pixels (clipping moves coefficients off their step)."""
    top, left = phase
    h = (y.shape[0] - top) // BLOCK * BLOCK
    w = (y.shape[1] - left) // BLOCK * BLOCK

    def blocks(a: np.ndarray) -> np.ndarray:
        a = a[top:top + h, left:left + w]
        return a.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).swapaxes(1, 2).reshape(
            -1, BLOCK, BLOCK)

    pixels = blocks(y - 128.0)[~blocks(clipped).any(axis=(1, 2))]
    if len(pixels) > limit:
        pixels = pixels[:: math.ceil(len(pixels) / limit)]
    d = _dct_matrix()
    return np.einsum("ij,njk,lk->nil", d, pixels, d)


def quantisation_step(values: np.ndarray) -> tuple[int, float] | None:
    """The largest step that these coefficient values sit on multiples of, and their median
    distance from those multiples; None when no step shows. (Every divisor of the step
    fits too: hence the largest.)"""
    magnitudes = np.abs(values)
    found = None
    for step in range(MIN_STEP, MAX_STEP + 1):
        # Only values the encoder kept (rounded to +-1 step or more) say where the comb is.
        kept = values[magnitudes >= step / 2]
        if len(kept) < _enough_values(step):
            if len(kept) < _enough_values(MAX_STEP):
                break
            continue
        residual = float(np.median(np.abs(kept - step * np.round(kept / step))))
        if residual <= MAX_RESIDUAL:
            found = (step, residual)
    return found


def _enough_values(step: int) -> int:
    """How many values it takes before unquantised ones (residuals uniform over +-step/2:
    mean step/4, standard deviation step/sqrt(48 n)) could pass MAX_RESIDUAL only by
    chance of four standard deviations or more."""
    margin = step / 4 - MAX_RESIDUAL
    return max(8, math.ceil((4 * step / math.sqrt(48) / margin) ** 2))


def grid_phase(y: np.ndarray, clipped: np.ndarray) -> tuple[int, int]:
    """The (row, column), 0-7, where the encoder's 8x8 blocks start: where most AC
    coefficients are zero. Quantisation zeroes them inside its own blocks only; blocks cut
    across its edges carry those edges as detail. (Measured on the report's photos, this
    found the grid of cropped quality-60 JPEGs whose blockiness did not show it.)"""
    # The same PHASE_BLOCKS sampled places, shifted by each trial offset.
    rows = (y.shape[0] - BLOCK) // BLOCK
    cols = (y.shape[1] - BLOCK) // BLOCK
    picks = np.linspace(0, rows * cols - 1, min(PHASE_BLOCKS, rows * cols)).astype(int)
    tops, lefts = picks // cols * BLOCK, picks % cols * BLOCK
    span = np.arange(BLOCK)
    d = _dct_matrix()
    best, best_share = (0, 0), -1.0
    for top in range(BLOCK):
        for left in range(BLOCK):
            r = (tops + top)[:, None, None] + span[None, :, None]
            c = (lefts + left)[:, None, None] + span[None, None, :]
            blocks = (y[r, c] - 128.0)[~clipped[r, c].any(axis=(1, 2))]
            if len(blocks) == 0:
                continue
            ac = np.abs(np.einsum("ij,njk,lk->nil", d, blocks, d).reshape(len(blocks), -1)[:, 1:])
            share = float((ac < ZERO).mean())
            if share > best_share:
                best, best_share = (top, left), share
    return best


def _quality_from_steps(steps: Mapping[tuple[int, int], int]) -> int | None:
    """The IJG quality whose luma table has these steps, None when none fits them all."""
    def mismatch(quality: int) -> float:
        table = scaled_table(STANDARD_LUMA, quality).reshape(BLOCK, BLOCK)
        return sum(abs(math.log(step / table[u, v]))
                   for (u, v), step in steps.items()) / len(steps)

    quality = min(QUALITIES, key=mismatch)
    return quality if mismatch(quality) <= MAX_MISMATCH else None


def quality_from_pixels(image: np.ndarray) -> int | None:
    """The IJG quality these decoded pixels were saved at, or None when they show no JPEG
    quantisation (never compressed, or resized or filtered since, or too flat to tell)."""
    y = luma(image)
    clipped = ((unit_channels(image) <= 0.0) | (unit_channels(image) >= 1.0)).any(axis=0)
    if min(y.shape) < 2 * BLOCK:
        return None
    coefficients = _block_coefficients(y, clipped, grid_phase(y, clipped))
    steps = {}
    for u, v in PROBED:
        found = quantisation_step(coefficients[:, u, v])
        if found:
            steps[(u, v)] = found[0]
    # One step alone could be found by chance (an area of repeated blocks).
    return _quality_from_steps(steps) if len(steps) >= 2 else None


def estimate_quality(image: np.ndarray, path: Path | None = None) -> QualityEstimate | None:
    """The image's JPEG quality: from the file's tables when `path` is a JPEG, else from
    the pixels; None when neither shows a JPEG."""
    if path is not None:
        quality = quality_of_file(path)
        if quality is not None:
            return QualityEstimate(quality, "quantisation tables")
    quality = quality_from_pixels(image)
    return QualityEstimate(quality, "pixels") if quality is not None else None


def axis_value(image: np.ndarray, source: Path | None = None) -> float:
    """The JPEG quality `auto` puts on a quality axis (dni.auto_strength), or WeightsError
    when the image shows none: guessing would pick a strength for artefacts that may not
    be there."""
    found = estimate_quality(image, source)
    if found is None:
        raise WeightsError("no JPEG compression can be read from this image (it was never "
                           "saved as a JPEG, or was resized or filtered since): set the "
                           "strength by hand")
    return float(found.quality)
