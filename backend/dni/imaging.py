"""Between the caller's arrays and the network's planes, a tile or a strip at a time.

Callers pass HxW or HxWxC arrays (C = 1, 3 or 4) of uint8, uint16, float16 or float32
(floats in [0, 1] nominal). The network sees float32 RGB planes (3, h, w) cut from the
caller's array tile by tile, so a large image is never converted whole; alpha never
enters the network and is carried over (resized for super-resolution). Results are
written back strip by strip in the caller's dtype and channel count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import ImageError

_INT_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_MAX_PIXELS = 16384 * 16384
_BICUBIC_REACH = 2  # input pixels a bicubic tap reaches beyond the sampled position

Box = tuple[int, int, int, int]  # y0, y1, x0, x1


@dataclass(frozen=True)
class ImageFormat:
    dtype: np.dtype
    channels: int  # 1, 3 or 4 as given
    squeeze: bool  # the caller gave a 2-D array


def describe(image: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageFormat:
    """Validate the caller's image without converting it."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    squeeze = image.ndim == 2
    if not squeeze and (image.ndim != 3 or image.shape[2] not in (1, 3, 4)):
        raise ImageError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}")
    height, width = image.shape[:2]
    if height < 1 or width < 1:
        raise ImageError("the image is empty")
    if height * width > max_pixels:
        raise ImageError(f"the image has {width}x{height} pixels, over the limit of "
                         f"{max_pixels} pixels (raise it with --max-pixels)")
    if image.dtype in _FLOATS:
        if not np.isfinite(image).all():
            raise ImageError("the image contains NaN or infinite values")
    elif image.dtype not in _INT_MAX:
        raise ImageError(f"unsupported pixel type {image.dtype}; use uint8, uint16 or float")
    channels = 1 if squeeze else image.shape[2]
    dtype = np.dtype(np.float32) if image.dtype == np.float64 else np.dtype(image.dtype)
    return ImageFormat(dtype, channels, squeeze)


def _unit(values: np.ndarray) -> np.ndarray:
    if values.dtype in _INT_MAX:
        return values.astype(np.float32) * np.float32(1.0 / _INT_MAX[values.dtype])
    return values.astype(np.float32)


def rgb_tile(image: np.ndarray, box: Box) -> np.ndarray:
    """The network's input for one tile: float32 (3, h, w), channels-last in memory (a
    transposed view of a fresh (h, w, 3) array), which is what the convolutions want."""
    y0, y1, x0, x1 = box
    crop = image[y0:y1, x0:x1]
    if crop.ndim == 2:
        crop = crop[:, :, None]
    pixels = _unit(crop[:, :, :3])
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels).transpose(2, 0, 1)


def crop_of(plane: np.ndarray) -> Callable[[Box], np.ndarray]:
    return lambda box: plane[..., box[0]:box[1], box[2]:box[3]]


def upscaled(source: Callable[[Box], np.ndarray], size: tuple[int, int], box: Box,
             scale: int) -> np.ndarray:
    """Rows y0:y1, columns x0:x1 (output coordinates) of a plane of `size` (H, W) resized
    bicubically by `scale`. `source(box)` crops the plane ((h, w) or (C, h, w)); the crop
    gets enough context that the result equals resizing the whole plane."""
    y0, y1, x0, x1 = box
    if scale == 1:
        return source(box)
    height, width = size
    iy0, ix0 = max(0, y0 // scale - _BICUBIC_REACH), max(0, x0 // scale - _BICUBIC_REACH)
    iy1 = min(height, -(-y1 // scale) + _BICUBIC_REACH)
    ix1 = min(width, -(-x1 // scale) + _BICUBIC_REACH)
    # torch only here: the command line imports this module (its limits) before it
    # knows whether any work will be done, and importing torch costs ~0.5 GB.
    import torch
    import torch.nn.functional as F

    crop = np.ascontiguousarray(source((iy0, iy1, ix0, ix1)), dtype=np.float32)
    t = torch.from_numpy(crop)
    t = t[None, None] if t.dim() == 2 else t[None]
    big = F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)[0]
    if crop.ndim == 2:
        big = big[0]
    oy, ox = iy0 * scale, ix0 * scale
    return big[..., y0 - oy:y1 - oy, x0 - ox:x1 - ox].numpy()


class Writer:
    """Fills the result array strip by strip: alpha, masking and dtype conversion
    happen per strip, so no full-size float copy of the image is ever made."""

    def __init__(self, image: np.ndarray, fmt: ImageFormat, scale: int,
                 mask: np.ndarray | None) -> None:
        self.image, self.fmt, self.scale, self.mask = image, fmt, scale, mask
        height, width = image.shape[:2]
        shape = (height * scale, width * scale) if fmt.squeeze else \
            (height * scale, width * scale, fmt.channels)
        self.result = np.empty(shape, dtype=fmt.dtype)
        self._size = (height, width)

    def write(self, y0: int, rgb: np.ndarray) -> None:
        """Final RGB rows (3, h, W * scale) starting at output row y0."""
        y1 = y0 + rgb.shape[1]
        full = (y0, y1, 0, self.result.shape[1])
        if self.mask is not None:  # outside the mask: the input, resized like the output
            keep = 1.0 - upscaled(crop_of(self.mask), self._size, full, self.scale)
            base = upscaled(lambda box: rgb_tile(self.image, box), self._size, full, self.scale)
            rgb = rgb + keep[None] * base
        planes = rgb.mean(axis=0, keepdims=True) if self.fmt.channels == 1 else rgb
        out = planes.transpose(1, 2, 0)
        if self.fmt.dtype in _INT_MAX:
            peak = np.float32(_INT_MAX[self.fmt.dtype])
            out = np.clip(out * peak + 0.5, 0, peak)
        target = self.result[y0:y1]
        if self.fmt.squeeze:
            target[:] = out[:, :, 0]
            return
        target[:, :, :out.shape[2]] = out
        if self.fmt.channels == 4:
            if self.scale == 1:
                target[:, :, 3] = self.image[y0:y1, :, 3]  # alpha untouched, bit for bit
            else:
                alpha = np.clip(upscaled(lambda b: _unit(self.image[b[0]:b[1], b[2]:b[3], 3]),
                                         self._size, full, self.scale), 0.0, 1.0)
                if self.fmt.dtype in _INT_MAX:
                    peak = np.float32(_INT_MAX[self.fmt.dtype])
                    alpha = np.clip(alpha * peak + 0.5, 0, peak)
                target[:, :, 3] = alpha


def as_unit_map(values: np.ndarray, shape: tuple[int, int], what: str) -> np.ndarray:
    """A mask or strength map as float32 (H, W) in [0, 1]."""
    if not isinstance(values, np.ndarray):
        raise ImageError(f"the {what} must be a numpy array")
    arr = values[:, :, 0] if values.ndim == 3 and values.shape[2] == 1 else values
    if arr.ndim != 2:
        raise ImageError(f"the {what} must be a single-channel image, got shape {values.shape}")
    if arr.shape != shape:
        raise ImageError(f"the {what} is {arr.shape[1]}x{arr.shape[0]} but the image is "
                         f"{shape[1]}x{shape[0]}")
    if arr.dtype in _INT_MAX:
        return _unit(arr)
    if arr.dtype in _FLOATS:
        out = arr.astype(np.float32)
        if not np.isfinite(out).all() or out.min() < 0 or out.max() > 1:
            raise ImageError(f"the {what} must hold values between 0 and 1")
        return out
    raise ImageError(f"unsupported {what} pixel type {arr.dtype}")
