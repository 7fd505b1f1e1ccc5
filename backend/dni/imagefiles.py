"""Reading and writing image files for the command line: atomic writes only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DNIError, ImageError

Image.MAX_IMAGE_PIXELS = None  # our own pixel limit applies (imaging.split)
_WRITABLE = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
             ".webp": "WEBP", ".bmp": "BMP"}


def read_image(path: Path) -> np.ndarray:
    """HxWxC uint8 (or HxW uint16 for 16-bit greyscale) as stored in the file."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(img, dtype=np.uint16).copy()
            if img.mode == "I":
                return np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
            if img.mode not in ("RGB", "RGBA", "L"):
                img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info
                                  else "RGB")
            return np.asarray(img).copy()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"{path}: cannot read this image ({exc})") from None


def read_unit_map(path: Path) -> np.ndarray:
    """A greyscale mask or strength map as float32 in [0, 1]."""
    arr = read_image(path)
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[:, :, :3]
        arr = arr.astype(np.float32).mean(axis=2) / 255.0
        return arr.astype(np.float32)
    return arr.astype(np.float32) / (65535.0 if arr.dtype == np.uint16 else 255.0)


def check_writable(path: Path) -> str:
    fmt = _WRITABLE.get(path.suffix.lower())
    if fmt is None:
        raise DNIError(f"{path}: unknown output format; use one of {', '.join(sorted(_WRITABLE))}")
    if not path.parent.is_dir():
        raise DNIError(f"{path.parent}: output folder does not exist")
    return fmt


def write_image(path: Path, array: np.ndarray) -> None:
    """Write via a temporary file in the same folder, then rename: never half-written."""
    fmt = check_writable(path)
    img = Image.fromarray(array)
    if fmt == "JPEG" and img.mode == "RGBA":
        img = img.convert("RGB")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            img.save(handle, format=fmt)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, writer: object) -> None:
    """Call writer(tmp_path) and move the result into place only if it succeeded."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)  # type: ignore[operator]
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
