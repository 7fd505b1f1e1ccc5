"""Image files for the command line: read after checking the header, written atomically.

Reading never decodes before the header was checked: a 76 KB PNG can claim 25000x25000
pixels (a decompression bomb), so the size, the frame count and, for masks, the match
with the image are settled from the header alone. Samples keep their depth: 16-bit PNGs
come back as uint16 (Pillow would cut colour ones to 8 bits), float greyscale TIFFs as
float32.

Writing goes through `ImageOutput`, which checks and reserves the output before any work
(see `OutputFile`) and says up front, as a warning, when the chosen format cannot hold
the result's depth or alpha.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DNIError, ImageError

Image.MAX_IMAGE_PIXELS = None  # our own limit applies, checked before decoding
Warn = Callable[[str], None]
# What `dni` reads; Pillow knows more formats, some of them through outside programs.
READ_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP", "GIF", "PPM", "TGA")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_DEEP_PNG_COLOUR_TYPES = (2, 4, 6)  # RGB, grey + alpha, RGBA: Pillow reads them as 8-bit
_BITS = {np.dtype(np.uint8): "8-bit", np.dtype(np.uint16): "16-bit",
         np.dtype(np.float32): "32-bit float"}


def _no_warning(_message: str) -> None:
    pass


# -- reading ------------------------------------------------------------------------------

@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """The image, opened lazily (only the header is read); ImageError if unreadable."""
    try:
        with Image.open(path, formats=READ_FORMATS) as img:
            yield img
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: cannot read this image (not a "
                         f"{', '.join(READ_FORMATS)} file, or damaged)") from None
    except (OSError, ValueError, SyntaxError, struct.error, EOFError) as exc:
        raise ImageError(f"{path}: cannot read this image ({exc})") from None


def _check_still(img: Image.Image, path: Path) -> None:
    """dni filters one picture: an animation or multi-page file would lose all but one.
    A camera's MPO (a JPEG with previews or a depth map after it) is its first picture."""
    if img.format == "MPO":
        return
    if getattr(img, "is_animated", False) or getattr(img, "n_frames", 1) > 1:
        raise ImageError(f"{path}: has {img.n_frames} frames or pages; dni filters a single "
                         "image (save the frame you want as its own file)")


def read_image(path: Path, max_pixels: int | None = None, warn: Warn = _no_warning,
               ) -> np.ndarray:
    """HxW (grey) or HxWx3/4 as stored: uint8, uint16 (16-bit files) or float32 (float
    greyscale TIFF). ImageError, before decoding, if the header says it has more than
    `max_pixels` pixels or several frames."""
    with _opened(path) as img:
        _check_still(img, path)
        width, height = img.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageError(f"{path}: the image has {width}x{height} pixels, over the limit "
                             f"of {max_pixels} pixels (raise it with --max-pixels)")
        return _decode(img, path, warn)


def read_unit_map(path: Path, size: tuple[int, int], what: str) -> np.ndarray:
    """A greyscale mask or strength map as float32 in [0, 1]; its header must say it has
    the image's size (height, width), checked before decoding."""
    with _opened(path) as img:
        _check_still(img, path)
        if img.size != (size[1], size[0]):
            raise ImageError(f"{path}: the {what} is {img.size[0]}x{img.size[1]} but the "
                             f"image is {size[1]}x{size[0]}")
        arr = _decode(img, path, _no_warning)
    if arr.dtype == np.float32:
        return np.clip(arr, 0.0, 1.0)
    peak = 65535.0 if arr.dtype == np.uint16 else 255.0
    if arr.ndim == 3:
        return (arr[:, :, :3].astype(np.float32).mean(axis=2) / peak).astype(np.float32)
    return arr.astype(np.float32) / np.float32(peak)


def _decode(img: Image.Image, path: Path, warn: Warn) -> np.ndarray:
    try:
        if _is_deep_colour_png(path, img):
            return _decode_deep_png(path)
        if img.mode in ("RGB", "RGBA", "LA") and ";16" in _rawmode(img):
            warn(f"{path}: dni reads this {img.format} file's 16-bit colour as 8 bits per "
                 "channel (a 16-bit PNG keeps them)")
        return _pixels(img)
    except (OSError, ValueError, SyntaxError, struct.error, EOFError, RuntimeError) as exc:
        raise ImageError(f"{path}: cannot read this image ({exc})") from None


def _pixels(img: Image.Image) -> np.ndarray:
    img.load()
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.uint16).copy()
    if img.mode == "I":
        return np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32).copy()
    if img.mode == "1":
        img = img.convert("L")
    elif img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info
                          else "RGB")
    return np.asarray(img).copy()


def _rawmode(img: Image.Image) -> str:
    """How the file stores its samples (e.g. 'RGB;16B'), as far as Pillow says."""
    if not img.tile:
        return ""
    args = img.tile[0].args
    raw = args[0] if isinstance(args, tuple) and args else args
    return raw if isinstance(raw, str) else ""


def _is_deep_colour_png(path: Path, img: Image.Image) -> bool:
    if img.format != "PNG":
        return False
    with path.open("rb") as handle:
        head = handle.read(33)  # signature, then IHDR: length, type, w, h, depth, colour
    return head[:8] == _PNG_SIGNATURE and head[24] == 16 and head[25] in _DEEP_PNG_COLOUR_TYPES


def _decode_deep_png(path: Path) -> np.ndarray:
    """A 16-bit colour PNG as uint16 HxWx3 or HxWx4 (grey + alpha becomes RGBA).

    Pillow's decoder undoes the PNG filters but hands over 8 bits per sample: the high
    bytes ('RGB;16B'). Read again as little-endian ('RGB;16L') the same bytes give the
    low ones. Grey + alpha is four bytes a pixel, read at once as 8-bit 'RGBA'."""
    with Image.open(path, formats=("PNG",)) as img:
        stored, key = _rawmode(img), img.info.get("transparency")
    if stored.startswith("LA"):
        grey_hi, grey_lo, alpha_hi, alpha_lo = np.moveaxis(_png_as(path, "RGBA"), 2, 0)
        grey = grey_hi << 8 | grey_lo
        return np.stack([grey, grey, grey, alpha_hi << 8 | alpha_lo], axis=2)
    pixels = _png_as(path, stored) << 8 | _png_as(path, stored.replace(";16B", ";16L"))
    if isinstance(key, tuple) and len(key) == 3:  # tRNS: this one colour is transparent
        alpha = np.where((pixels == np.array(key, np.uint16)).all(axis=2), 0, 65535)
        pixels = np.dstack([pixels, alpha.astype(np.uint16)])
    return pixels


def _png_as(path: Path, rawmode: str) -> np.ndarray:
    """The PNG's pixels decoded as if stored in `rawmode`, as uint16."""
    with Image.open(path, formats=("PNG",)) as img:
        codec, extents, offset, _args = img.tile[0]
        kind = type(img.tile[0])  # Pillow >= 11: a named tuple; before, a plain one
        entry = (codec, extents, offset, rawmode)
        img.tile = [entry if kind is tuple else kind(*entry)]
        img.load()
        return np.asarray(img).astype(np.uint16)


# -- writing ------------------------------------------------------------------------------

@dataclass(frozen=True)
class OutputFormat:
    pil: str
    alpha: bool  # keeps an alpha channel
    deep: tuple[str, ...]  # kinds of deep sample kept: "grey16", "colour16", "grey32f"

    def fit(self, dtype: np.dtype, channels: int) -> tuple[np.dtype, bool]:
        """The sample type and whether alpha survive writing an image of this kind."""
        grey = channels == 1
        keeps_alpha = channels != 4 or self.alpha
        if dtype == np.uint8:
            return np.dtype(np.uint8), keeps_alpha
        kind16 = "grey16" if grey else "colour16"
        if dtype == np.float32 and grey and "grey32f" in self.deep:
            return np.dtype(np.float32), keeps_alpha
        return np.dtype(np.uint16 if kind16 in self.deep else np.uint8), keeps_alpha


# Pillow writes 16-bit only for greyscale, floats only as greyscale TIFF; colour 16-bit
# PNGs are written here (_write_deep_png). JPEG and BMP have no alpha (Pillow writes RGBA
# BMPs, but with an alpha that readers, Pillow included, ignore).
_OUTPUTS = {
    ".png": OutputFormat("PNG", True, ("grey16", "colour16")),
    ".tif": OutputFormat("TIFF", True, ("grey16", "grey32f")),
    ".tiff": OutputFormat("TIFF", True, ("grey16", "grey32f")),
    ".jpg": OutputFormat("JPEG", False, ()),
    ".jpeg": OutputFormat("JPEG", False, ()),
    ".webp": OutputFormat("WEBP", True, ()),
    ".bmp": OutputFormat("BMP", False, ()),
}
_KEEPS_DEEP = {"grey16": ".png or .tif", "colour16": ".png", "grey32f": ".tif"}


def image_format(path: Path) -> OutputFormat:
    fmt = _OUTPUTS.get(path.suffix.lower())
    if fmt is None:
        raise DNIError(f"{path}: unknown output format; use one of {', '.join(sorted(_OUTPUTS))}")
    return fmt


def _to_depth(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if array.dtype == dtype:
        return array
    if array.dtype == np.float32:
        peak = 65535.0 if dtype == np.uint16 else 255.0
        return np.clip(array * peak + 0.5, 0, peak).astype(dtype)
    # uint16 -> uint8, rounded (Pillow's own conversion would clip at 255 instead)
    return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _write_deep_png(handle: BinaryIO, array: np.ndarray, strip_rows: int = 256) -> None:
    """A 16-bit PNG (grey, RGB or RGBA), compressed strip by strip. Each row uses the
    'Up' filter (the byte difference from the row above), which suits photos well."""
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]

    def chunk(kind: bytes, data: bytes) -> None:
        handle.write(struct.pack(">I", len(data)) + kind + data)
        handle.write(struct.pack(">I", zlib.crc32(kind + data)))

    handle.write(_PNG_SIGNATURE)
    chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, {1: 0, 3: 2, 4: 6}[channels],
                               0, 0, 0))
    packer = zlib.compressobj(6)
    rows = array.reshape(height, width * channels)
    above = np.zeros(width * channels * 2, np.uint8)
    for y0 in range(0, height, strip_rows):
        strip = rows[y0:y0 + strip_rows].astype(">u2").view(np.uint8)
        previous = np.vstack([above[None], strip[:-1]])
        lines = np.hstack([np.full((len(strip), 1), 2, np.uint8), strip - previous])
        data = packer.compress(lines.tobytes())
        if data:
            chunk(b"IDAT", data)
        above = strip[-1]
    chunk(b"IDAT", packer.flush())
    chunk(b"IEND", b"")


def _save(tmp: str, array: np.ndarray, fmt: OutputFormat) -> None:
    with open(tmp, "wb") as handle:
        if fmt.pil == "PNG" and array.dtype == np.uint16 and array.ndim == 3:
            _write_deep_png(handle, array)
        else:
            Image.fromarray(array).save(handle, format=fmt.pil)


# -- the output file ----------------------------------------------------------------------

_UNFINISHED = ".dni-unfinished-"  # <output name><this><pid>-<random>: ours, while we write


class OutputFile:
    """An output path, checked and reserved before any work is done, written atomically.

    Entering creates the temporary file `<name>.dni-unfinished-<pid>-<random>` next to the
    output, so a read-only folder, a folder in the output's place or a missing folder fail
    at once, not after the computation. The result is written there and renamed over the
    output; leaving without a result (an error, Ctrl+C, SIGTERM) removes it. A SIGKILL
    cannot be caught: the file then stays, visible and named after the output, and the
    next run that writes the same output removes it once its process is gone.

    The file gets the permissions a newly created file gets (0666 less the umask), or the
    ones of the file it replaces. A symbolic link is written through: its target gets the
    result and the link stays, as when a program opens the path to write it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.target = self.check(path)
        self._tmp: Path | None = None

    @staticmethod
    def check(path: Path) -> Path:
        """The file that will be replaced (the link's target for a link); DNIError if the
        path cannot be an output file."""
        target = Path(os.path.realpath(path))
        if target.is_dir():
            raise DNIError(f"{path}: is a folder; give the output file's name")
        if not target.parent.is_dir():
            raise DNIError(f"{target.parent}: output folder does not exist")
        if target.exists():
            if not target.is_file():
                raise DNIError(f"{path}: exists and is not a regular file")
            if not os.access(target, os.W_OK):
                raise DNIError(f"{path}: the existing file is read-only")
        return target

    def __enter__(self) -> OutputFile:
        _remove_stale(self.target)
        self._tmp = _reserve(self.target)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.discard()

    def discard(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def write_with(self, writer: Callable[[str], None]) -> None:
        """writer(temporary path) writes the whole file; it then replaces the output."""
        if self._tmp is None:
            raise RuntimeError("OutputFile.write_with outside its `with` block")
        writer(str(self._tmp))
        os.replace(self._tmp, self.target)
        self._tmp = None


class ImageOutput(OutputFile):
    """An OutputFile for an image: the format is known (and checked) from the suffix."""

    def __init__(self, path: Path, warn: Warn = _no_warning) -> None:
        self.format = image_format(path)
        super().__init__(path)
        self._warn = warn

    def plan(self, dtype: np.dtype, channels: int) -> None:
        """Warn now, before any work, about what this format cannot hold of a result of
        this sample type and channel count (the engine returns the input's)."""
        kept, keeps_alpha = self.format.fit(np.dtype(dtype), channels)
        name, fmt = self.path.name, self.format.pil
        if kept != dtype:
            kind = ("grey" if channels == 1 else "colour") + \
                ("32f" if dtype == np.float32 and channels == 1 else "16")
            self._warn(f"{name}: {fmt} cannot keep these {_BITS[np.dtype(dtype)]} samples; "
                       f"writing {_BITS[kept]} ({_KEEPS_DEEP.get(kind, '.png')} keeps them)")
        if not keeps_alpha:
            self._warn(f"{name}: {fmt} has no alpha channel; the transparency is dropped "
                       "(.png, .tif or .webp keep it)")

    def write_image(self, array: np.ndarray) -> None:
        channels = 1 if array.ndim == 2 else array.shape[2]
        kept, keeps_alpha = self.format.fit(array.dtype, channels)
        out = _to_depth(array if keeps_alpha else array[:, :, :3], kept)
        self.write_with(lambda tmp: _save(tmp, np.ascontiguousarray(out), self.format))


def _reserve(target: Path) -> Path:
    """Create the temporary file next to `target`; DNIError if the folder refuses."""
    tmp = target.with_name(f"{target.name}{_UNFINISHED}{os.getpid()}-{secrets.token_hex(3)}")
    try:
        mode = target.stat().st_mode & 0o777  # replacing a file: keep its permissions
    except FileNotFoundError:
        mode = None
    try:
        # 0o666: the umask applies, as to any new file (mkstemp would make it 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        os.close(fd)
        if mode is not None:
            os.chmod(tmp, mode)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DNIError(f"{target.parent}: cannot write in this folder "
                       f"({exc.strerror or exc})") from None
    return tmp


def _remove_stale(target: Path) -> None:
    """Remove unfinished files of this output left by `dni` runs that were killed."""
    if os.name != "posix":
        return  # no cheap, safe liveness test for a process id
    prefix = f"{target.name}{_UNFINISHED}"
    try:
        names = [entry.name for entry in os.scandir(target.parent)
                 if entry.name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                (target.parent / name).unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
