"""Between the caller's arrays and the network's planes.

Callers pass HxW or HxWxC arrays (C = 1, 3 or 4) of uint8, uint16, float16 or float32
(floats in [0, 1] nominal). The network sees float32 RGB planes (3, H, W); alpha never
enters it and is carried over (resized for super-resolution). Results come back in the
caller's dtype and channel count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ImageError

_INT_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_MAX_PIXELS = 16384 * 16384


@dataclass(frozen=True)
class ImageFormat:
    dtype: np.dtype
    channels: int  # 1, 3 or 4 as given
    squeeze: bool  # the caller gave a 2-D array


def split(image: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS,
          ) -> tuple[np.ndarray, np.ndarray | None, ImageFormat]:
    """-> (rgb float32 (3, H, W), alpha float32 (H, W) or None, format to restore)."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    squeeze = image.ndim == 2
    arr = image[:, :, None] if squeeze else image
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {image.shape}")
    height, width, channels = arr.shape
    if height < 1 or width < 1:
        raise ImageError("the image is empty")
    if height * width > max_pixels:
        raise ImageError(f"the image has {width}x{height} pixels, over the limit of "
                         f"{max_pixels} pixels (raise it with --max-pixels)")
    if arr.dtype in _INT_MAX:
        planes = arr.astype(np.float32) / np.float32(_INT_MAX[arr.dtype])
    elif arr.dtype in _FLOATS:
        planes = arr.astype(np.float32)
        if not np.isfinite(planes).all():
            raise ImageError("the image contains NaN or infinite values")
    else:
        raise ImageError(f"unsupported pixel type {arr.dtype}; use uint8, uint16 or float")
    planes = np.ascontiguousarray(planes.transpose(2, 0, 1))
    alpha = planes[3].copy() if channels == 4 else None
    rgb = planes[:3] if channels >= 3 else np.repeat(planes, 3, axis=0)
    fmt = ImageFormat(np.dtype(arr.dtype) if arr.dtype != np.float64 else np.dtype(np.float32),
                      channels, squeeze)
    return np.ascontiguousarray(rgb), alpha, fmt


def resize_plane(plane: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic resize of one (H, W) plane by an integer factor, clamped to its range."""
    if scale == 1:
        return plane
    t = torch.from_numpy(plane)[None, None]
    out = F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)[0, 0]
    return out.clamp_(float(plane.min()), float(plane.max())).numpy()


def upscale_rgb(rgb: np.ndarray, scale: int) -> np.ndarray:
    if scale == 1:
        return rgb
    t = torch.from_numpy(rgb)[None]
    return F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)[0].numpy()


def merge(rgb: np.ndarray, alpha: np.ndarray | None, fmt: ImageFormat) -> np.ndarray:
    """(3, H, W) float32 (+ alpha) -> the caller's dtype and channel count."""
    planes = rgb.mean(axis=0, keepdims=True) if fmt.channels == 1 else rgb
    if alpha is not None:
        planes = np.concatenate([planes, alpha[None]], axis=0)
    out = planes.transpose(1, 2, 0)
    if fmt.dtype in _INT_MAX:
        peak = np.float32(_INT_MAX[fmt.dtype])
        out = np.clip(out * peak + 0.5, 0, peak).astype(fmt.dtype)
    else:
        out = out.astype(fmt.dtype)
    out = np.ascontiguousarray(out)
    return out[:, :, 0] if fmt.squeeze else out


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
        return arr.astype(np.float32) / np.float32(_INT_MAX[arr.dtype])
    if arr.dtype in _FLOATS:
        out = arr.astype(np.float32)
        if not np.isfinite(out).all() or out.min() < 0 or out.max() > 1:
            raise ImageError(f"the {what} must hold values between 0 and 1")
        return out
    raise ImageError(f"unsupported {what} pixel type {arr.dtype}")
