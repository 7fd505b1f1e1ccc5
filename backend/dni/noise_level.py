"""How noisy an image is: Gaussian noise sigma (0-255 units), per channel, for the whole
image and as a smooth per-region map.

Two estimators, measured against each other in models/REPORT.md ("Auto strength"):

* `pca_sigma`: the noise variance is the part of the patch covariance's
  eigenvalue spectrum where signal has run out. Image structure lives in a few large
  eigenvalues; i.i.d. noise adds sigma^2 to all of them. Following Chen, Zhu and Heng
  (ICCV 2015), the largest eigenvalues are dropped one by one until the mean of the rest
  is no longer above their median: that mean is sigma^2. In theory texture only moves
  the large eigenvalues; on fur and fine detail it reads high all the same.
* `wavelet_sigma` (the one used, METHOD): Donoho's median absolute deviation of the
  finest diagonal Haar band, taken over the flattest blocks (least horizontal and
  vertical detail).

Where the image was clipped (no values beyond 0 or 1), areas whose mean lies within two
sigmas of that limit, or with a part within half a sigma of it, are left out (estimate,
then estimate again without them until the margin settles): clipping removes noise there,
and a white sky would read as clean. Channels are combined weighted by how many areas
each was read on; a channel with none that far inside the range is left out (the blue of
a yellow flower is all near 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import imaging

PATCH = 6  # pixels per patch side: 36 dimensions, enough to separate signal from noise
MAX_PATCHES = 60_000  # per channel for the global estimate: more only costs time
MIN_PATCHES = 200  # fewer than this (a tiny or saturated area) says nothing
MIN_WINDOW = 64  # the map's window side, px: smaller windows make noisy estimates
MAP_CELLS = 16  # about this many windows along the longer side
MIN_WINDOWS = 4  # fewer readable windows: one sigma comes from the whole image
# Spread of the window sigmas, (p90 - p10) / median, above which the noise varies across the
# image: uniform noise on the held-out photos spreads up to 0.64 (baboon's fur at sigma
# 10), noise rising from sigma 5 to 50 across them 1.07 or more.
NOISE_VARIES = 0.8
SATURATED = 2.0 / 255  # areas whose mean is within this of 0 or 1 are clipped
CLIP_MARGIN = 2.0  # noise sigmas from 0 and 1 beyond which clipping is negligible
MAD_TO_SIGMA = 0.6745  # median |N(0, 1)|
FLAT_SHARE = 0.25  # the wavelet estimator keeps this share of the flattest blocks



class Reading(NamedTuple):
    """One channel's noise sigma (unit range) and how much of the image it rests on
    (patches or blocks used): channels are weighted by it when combined."""

    sigma: float
    support: int


ChannelEstimator = Callable[[np.ndarray], "Reading | None"]


def unit_channels(image: np.ndarray) -> np.ndarray:
    """The image as float32 (C, H, W) in [0, 1] nominal: colour channels only (alpha is
    not image content)."""
    fmt = imaging.describe(image, max_pixels=image.shape[0] * image.shape[1])
    planes = image if image.ndim == 3 else image[:, :, None]
    planes = planes[:, :, :3] if fmt.channels >= 3 else planes[:, :, :1]
    scale = np.float32(1.0 / np.iinfo(planes.dtype).max) if planes.dtype.kind == "u" else 1
    return np.moveaxis(planes.astype(np.float32) * np.float32(scale), -1, 0)


# -- PCA on patches (Chen et al. 2015) ----------------------------------------------------
class Safe(NamedTuple):
    """Where an area's mean (and each of its 2x2 parts) must lie to be read: far enough
    from a limit the image was clipped at."""

    low: float
    high: float
    parts_low: float
    parts_high: float


def _clipped(plane: np.ndarray) -> tuple[bool, bool]:
    """Whether the plane may have been clipped at 0 and at 1: not where it has values
    beyond that limit (unclipped float data)."""
    return float(plane.min()) > -SATURATED, float(plane.max()) < 1 + SATURATED


def _safe(clipped: tuple[bool, bool], margin: float) -> Safe:
    """`margin` inside each limit the plane was clipped at (its parts a quarter of it)."""
    low = margin if clipped[0] else -np.inf
    high = 1 - margin if clipped[1] else np.inf
    return Safe(low, high, low - 0.75 * margin, high + 0.75 * margin)


def _patches(plane: np.ndarray, limit: int, safe: Safe) -> np.ndarray:
    """Patches of `plane` as rows (n, PATCH^2), at a stride that keeps about `limit` of
    them, leaving out those whose mean is not inside `safe` (the patch mean, not its
    noisy pixels, decides: picking by the pixels would pick the quiet ones)."""
    h, w = plane.shape
    if h < PATCH or w < PATCH:
        return np.empty((0, PATCH * PATCH), np.float32)
    total = (h - PATCH + 1) * (w - PATCH + 1)
    stride = max(1, math.ceil(math.sqrt(total / limit)))
    view = sliding_window_view(plane, (PATCH, PATCH))[::stride, ::stride]
    rows = view.reshape(-1, PATCH * PATCH)
    means = rows.mean(axis=1)
    return rows[(means > safe.low) & (means < safe.high)]


def _tail_mean_at_median(eigenvalues: np.ndarray) -> float:
    """Chen et al.'s rule: drop the largest eigenvalues until the rest's mean is not above
    their median; that mean is the noise variance."""
    values = np.sort(eigenvalues)  # ascending
    for end in range(len(values), 0, -1):
        tail = values[:end]
        mean = float(tail.mean())
        if mean <= float(np.median(tail)):
            return max(mean, 0.0)
    return max(float(values[0]), 0.0)


def _pca_pass(plane: np.ndarray, limit: int, safe: Safe) -> Reading | None:
    rows = _patches(plane, limit, safe)
    if len(rows) < MIN_PATCHES:
        return None
    centred = rows.astype(np.float64) - rows.mean(axis=0)
    covariance = centred.T @ centred / (len(rows) - 1)
    return Reading(math.sqrt(_tail_mean_at_median(np.linalg.eigvalsh(covariance))), len(rows))


def _away_from_clipping(plane: np.ndarray, estimate: Callable[[Safe], Reading | None]
                        ) -> Reading | None:
    """Estimate once, then again on areas at least CLIP_MARGIN sigmas inside the range:
    closer to 0 or 1, clipping has removed part of the noise. A first estimate that
    clipping pulled down gives too small a margin, so the margin follows the estimate
    until it settles. None when no area lies that far inside (a channel that is all near
    black or white, as the blue of a yellow flower): what it reads is not the noise."""
    clipped = _clipped(plane)
    reading = estimate(_safe(clipped, SATURATED))
    for _ in range(3):
        if reading is None:
            return None
        again = estimate(_safe(clipped, max(SATURATED, CLIP_MARGIN * reading.sigma)))
        if again is None or abs(again.sigma - reading.sigma) <= 0.02 * reading.sigma:
            return again
        reading = again
    return reading


def pca_sigma(plane: np.ndarray, limit: int = MAX_PATCHES) -> Reading | None:
    """Noise sigma (unit range) of one channel, or None when too few usable patches."""
    return _away_from_clipping(plane, lambda safe: _pca_pass(plane, limit, safe))


# -- wavelet MAD on flat blocks (Donoho) --------------------------------------------------
def wavelet_sigma(plane: np.ndarray) -> Reading | None:
    """Noise sigma (unit range) from the diagonal Haar band of the flattest blocks."""
    return _away_from_clipping(plane, lambda safe: _wavelet_pass(plane, safe))


def _wavelet_pass(plane: np.ndarray, safe: Safe, block: int = 8) -> Reading | None:
    h, w = (plane.shape[0] // (2 * block)) * 2 * block, (plane.shape[1] // (2 * block)) * 2 * block
    if h == 0 or w == 0:
        return None
    x = plane[:h, :w].astype(np.float64)
    a, b, c, d = x[0::2, 0::2], x[0::2, 1::2], x[1::2, 0::2], x[1::2, 1::2]
    diagonal = (a - b - c + d) / 2  # orthonormal Haar: white noise keeps its sigma
    detail = ((a + b - c - d) / 2) ** 2 + ((a - b + c - d) / 2) ** 2
    means = (a + b + c + d) / 4

    def blocks(values: np.ndarray) -> np.ndarray:
        bh, bw = values.shape[0] // block, values.shape[1] // block
        return values.reshape(bh, block, bw, block).swapaxes(1, 2).reshape(bh * bw, -1)

    local = blocks(means)  # 2x2 means: noise sigma / 2 on each
    block_means = local.mean(axis=1)
    # The block's mean away from clipping, and none of its parts close to it (an edge
    # between dark and bright can have a middling mean and clipped pixels).
    usable = (block_means > safe.low) & (block_means < safe.high) \
        & (local.min(axis=1) > safe.parts_low) & (local.max(axis=1) < safe.parts_high)
    if usable.sum() < 4:
        return None
    energy = blocks(detail).mean(axis=1)[usable]
    coefficients = blocks(diagonal)[usable]
    keep = energy <= np.quantile(energy, FLAT_SHARE)
    return Reading(float(np.median(np.abs(coefficients[keep]))) / MAD_TO_SIGMA,
                   int(usable.sum()))


ESTIMATORS: dict[str, ChannelEstimator] = {"pca": pca_sigma, "wavelet": wavelet_sigma}
# The one used: closer to the true sigma on the held-out photos, above all on textured ones
# and at low sigma, where PCA reads fur and fine detail as noise (models/REPORT.md).
METHOD = "wavelet"


# -- the image's sigma --------------------------------------------------------------------
def _readings(image: np.ndarray, method: str) -> list[Reading | None]:
    estimate = ESTIMATORS[method]
    return [estimate(plane) for plane in unit_channels(image)]


def channel_sigmas(image: np.ndarray, method: str = METHOD) -> list[float | None]:
    """Noise sigma of each colour channel, 0-255 units; None where it could not be read
    (too small, or all of it near 0 or 1)."""
    return [None if r is None else 255.0 * r.sigma for r in _readings(image, method)]


def _combined(readings: list[Reading | None]) -> float | None:
    """One sigma (unit range) for the channels that could be read: the root mean square
    (what a per-channel Gaussian denoiser trained at one sigma sees on average), each
    channel weighted by how much of the image it was read on (a channel mostly near
    black or white reads its few usable areas, often edges near clipping, low). None
    if no channel could be read."""
    read = [r for r in readings if r is not None]
    total = sum(r.support for r in read)
    if not read or total <= 0:
        return None
    return math.sqrt(sum(r.support * r.sigma * r.sigma for r in read) / total)


def global_sigma(image: np.ndarray, method: str = METHOD) -> float:
    """The image's noise sigma, 0-255 units (0 when nothing could be read)."""
    sigma = _combined(_readings(image, method))
    return 0.0 if sigma is None else 255.0 * sigma


# -- the per-region map -------------------------------------------------------------------
def _window_grid(length: int, window: int) -> list[int]:
    """Start offsets of windows of `window` px, half overlapping, covering `length`."""
    if length <= window:
        return [0]
    count = math.ceil((length - window) / (window / 2)) + 1
    return [round(i * (length - window) / (count - 1)) for i in range(count)]


def _smooth_grid(grid: np.ndarray) -> np.ndarray:
    """A 3x3 median (drops single windows fooled by texture), then two [1 2 1] passes
    each way: neighbouring windows agree, so the interpolated map has no seams."""
    padded = np.pad(grid, 1, mode="edge")
    stack = [padded[i:i + grid.shape[0], j:j + grid.shape[1]] for i in range(3) for j in range(3)]
    out = np.median(np.stack(stack), axis=0)
    for axis in (0, 1):
        for _ in range(2):
            p = np.pad(out, [(1, 1) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
            lo = p[:-2] if axis == 0 else p[:, :-2]
            mid = p[1:-1] if axis == 0 else p[:, 1:-1]
            hi = p[2:] if axis == 0 else p[:, 2:]
            out = (lo + 2 * mid + hi) / 4
    return out


def _fill_missing(grid: np.ndarray, fallback: float) -> np.ndarray:
    """Windows that could not be read (saturated, flat black) take the mean of those
    that could, or `fallback`."""
    known = np.isfinite(grid)
    return np.where(known, grid, grid[known].mean() if known.any() else fallback)


def grid_to_pixels(grid: np.ndarray, ys: list[float], xs: list[float],
                   shape: tuple[int, int]) -> np.ndarray:
    """Bilinear from window centres to every pixel (constant beyond the outer centres)."""
    rows = np.stack([np.interp(np.arange(shape[1]), xs, line) for line in grid])
    return np.stack([np.interp(np.arange(shape[0]), ys, rows[:, x]) for x in range(shape[1])],
                    axis=1).astype(np.float32)


def _window_sigmas(image: np.ndarray, method: str
                   ) -> tuple[np.ndarray, list[float], list[float]]:
    """Sigma (0-255) of each overlapping window, NaN where nothing could be read, and
    the window centres' y and x."""
    estimate = ESTIMATORS[method]
    planes = unit_channels(image)
    h, w = planes.shape[1:]
    window = max(MIN_WINDOW, math.ceil(max(h, w) / MAP_CELLS))
    tops, lefts = _window_grid(h, window), _window_grid(w, window)
    grid = np.full((len(tops), len(lefts)), np.nan)
    for i, top in enumerate(tops):
        for j, left in enumerate(lefts):
            sigma = _combined([estimate(p[top:top + window, left:left + window])
                               for p in planes])
            if sigma is not None:
                grid[i, j] = 255.0 * sigma
    ys = [t + min(window, h) / 2 - 0.5 for t in tops]
    xs = [x + min(window, w) / 2 - 0.5 for x in lefts]
    return grid, ys, xs


def sigma_grid(image: np.ndarray, method: str = METHOD
               ) -> tuple[np.ndarray, list[float], list[float]]:
    """The smoothed sigma (0-255) at the centres of overlapping windows, and those
    centres' y and x."""
    grid, ys, xs = _window_sigmas(image, method)
    return _smooth_grid(_fill_missing(grid, global_sigma(image, method))), ys, xs


def image_sigma(image: np.ndarray, method: str = METHOD) -> float:
    """The one sigma a single strength should answer (0-255). Where the noise clearly
    varies across the image (the windows' 10th to 90th percentile span more than
    NOISE_VARIES of their median), the median over the windows: the flattest blocks of
    the whole image would all sit in its quietest part and read it low. Otherwise the
    whole-image estimate, which textured windows do not pull up."""
    grid, _ys, _xs = _window_sigmas(image, method)
    known = grid[np.isfinite(grid)]
    if known.size >= MIN_WINDOWS:
        low, middle, high = np.percentile(known, [10, 50, 90])
        if middle > 0 and (high - low) / middle > NOISE_VARIES:
            return float(middle)
    return global_sigma(image, method)


def sigma_map(image: np.ndarray, method: str = METHOD) -> np.ndarray:
    """The noise sigma (0-255) at every pixel, float32 (H, W), smooth."""
    grid, ys, xs = sigma_grid(image, method)
    return grid_to_pixels(grid, ys, xs, image.shape[:2])
