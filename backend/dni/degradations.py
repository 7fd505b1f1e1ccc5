"""The effects `dni finetune` teaches a network to undo, made on the fly from clean crops.

Each is what a user's image really went through: Gaussian noise (clipped to the valid
range, as a saved image is), JPEG through Pillow's encoder with 4:2:0 chroma subsampling
(what cameras and the web use), and a Gaussian blur. Batches are Bx3xHxW floats in [0, 1].
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import DNIError

# What each effect's number may be: (flag, what it is, lowest, highest).
LIMITS = {
    "noise": ("--noise", "the noise's standard deviation on the 0-255 scale", 0.5, 255.0),
    "jpeg": ("--jpeg", "the JPEG quality", 1, 95),
    "blur": ("--blur", "the blur's standard deviation in pixels", 0.1, 20.0),
}
# JPEG's grid repeats every 16 px with 4:2:0: crops are cut from a region one block larger
# at a random offset, so the net sees every phase of the grid.
JPEG_BLOCK = 16


@dataclass(frozen=True)
class Words:
    """An effect in plain words: the slider's name, the new member's label, what the
    slider's new end does, and what the network was fine-tuned for."""

    axis: str
    label: str
    high: str
    purpose: str


@dataclass(frozen=True)
class Effect:
    """What the new member learns: "noise", "jpeg", "blur" or "pairs" (given examples)."""

    kind: str
    amount: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in LIMITS:
            return
        flag, what, low, high = LIMITS[self.kind]
        if self.amount is None or not math.isfinite(self.amount) or not low <= self.amount <= high:
            raise DNIError(f"{flag} {self.amount}: {what} must be from {low} to {high}")
        if self.kind == "jpeg" and self.amount != int(self.amount):
            raise DNIError(f"--jpeg {self.amount}: the JPEG quality is a whole number")

    @property
    def margin(self) -> int:
        """Extra input pixels each side needs before the effect (cropped off after)."""
        return JPEG_BLOCK if self.kind == "jpeg" else 0

    def shown(self) -> str:
        """The amount as the user typed it: 25, not 25.0."""
        assert self.amount is not None
        return f"{self.amount:g}"

    def words(self) -> Words:
        """How the family and its slider describe this effect."""
        if self.kind == "noise":
            return Words("noise removal", f"noise sigma {self.shown()}",
                         f"removes noise of sigma {self.shown()}",
                         f"to remove noise of sigma {self.shown()}")
        if self.kind == "jpeg":
            return Words("JPEG clean-up", f"JPEG quality {self.shown()}",
                         f"removes JPEG artefacts of quality {self.shown()}",
                         f"to remove JPEG artefacts of quality {self.shown()}")
        if self.kind == "blur":
            return Words("sharpening", f"blur {self.shown()} px",
                         f"undoes a blur of {self.shown()} px",
                         f"to undo a blur of {self.shown()} px")
        return Words("learned effect", "fine-tuned", "like the example pairs",
                     "to turn example inputs into their targets")

    def apply(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The degraded batch (what the network is given) made from `clean`."""
        if self.kind == "noise":
            noise = torch.randn(clean.shape, generator=generator) * (float(self.amount) / 255.0)
            return (clean + noise).clamp_(0.0, 1.0)
        if self.kind == "jpeg":
            return torch.stack([jpeg(c, int(self.amount)) for c in clean])  # type: ignore[arg-type]
        if self.kind == "blur":
            return gaussian_blur(clean, float(self.amount))  # type: ignore[arg-type]
        raise DNIError(f"the effect {self.kind!r} is made from example pairs, not on the fly")


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """A 3xHxW image in [0, 1] through Pillow's JPEG encoder (4:2:0) and back."""
    pixels = image.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="JPEG", quality=quality,
                                                       subsampling=2)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        back = np.asarray(decoded.convert("RGB"))
    return torch.from_numpy(back.copy()).permute(2, 0, 1).float().div_(255.0)


def gaussian_blur(batch: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of Bx3xHxW, the image's edges mirrored."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(batch.dtype)
    channels = batch.shape[1]
    pad_mode = "reflect" if radius < min(batch.shape[-2:]) else "replicate"
    x = F.pad(batch, (radius, radius, radius, radius), mode=pad_mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def downscaled(batch: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic, antialiased reduction by `scale`: a super-resolution net's input."""
    if scale == 1:
        return batch
    return F.interpolate(batch, scale_factor=1 / scale, mode="bicubic", antialias=True,
                         align_corners=False).clamp_(0.0, 1.0)
