"""Training data for `dni finetune`: the user's photos, and the batches cut from them.

A batch is (what the network is given, what it should give back). With an effect made on
the fly, random crops of the clean photos are the targets, and the inputs are the same
crops reduced by the network's scale and degraded. With example pairs, aligned crops of
each input image and its target are taken as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .degradations import Effect, downscaled
from .errors import DNIError
from .imagefiles import read_image
from .imaging import DEFAULT_MAX_PIXELS, rgb_tile
from .training import CropSampler, PairSampler

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
Batch = tuple[torch.Tensor, torch.Tensor]
Warn = Callable[[str], None]
MAX_SIDE = 2048  # clean photos larger than this are halved until they fit
MAX_PIXELS = 200 * 10**6  # photos kept in memory (uint8): about 600 MB


def image_files(folder: Path, flag: str) -> list[Path]:
    """The images in `folder`, sorted; DNIError if it is not a folder or holds none."""
    if not folder.is_dir():
        raise DNIError(f"{flag} {folder}: no such folder")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DNIError(f"{flag} {folder}: this folder holds no images "
                       f"({', '.join(s[1:] for s in IMAGE_SUFFIXES)})")
    return files


def read_rgb8(path: Path) -> torch.Tensor:
    """A 3xHxW uint8 tensor of the image's colour (grey repeated, alpha dropped, 16-bit
    rounded to 8), its header checked before decoding."""
    image = read_image(path, DEFAULT_MAX_PIXELS)
    planes = rgb_tile(image, (0, image.shape[0], 0, image.shape[1]))
    return torch.from_numpy(planes).mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def shrunk(image: torch.Tensor) -> torch.Tensor:
    """A clean photo halved (box filter) until its longer side is at most MAX_SIDE: camera
    photos are bigger than crops need, and halving also shrinks their own noise and JPEG
    artefacts, which would otherwise be learnt as part of the target."""
    while max(image.shape[-2:]) > MAX_SIDE:
        h, w = image.shape[-2] // 2 * 2, image.shape[-1] // 2 * 2
        quads = image[:, :h, :w].float().reshape(3, h // 2, 2, w // 2, 2)
        image = quads.mean(dim=(2, 4)).round_().to(torch.uint8)
    return image


def clean_images(folder: Path, side: int, warn: Warn) -> list[torch.Tensor]:
    """The clean photos (shrunk), those at least `side` px on each side; smaller ones are
    skipped and, past MAX_PIXELS in all, the rest too, saying so."""
    images, small, total = [], [], 0
    files = image_files(folder, "--images")
    for index, path in enumerate(files):
        if total > MAX_PIXELS:
            warn(f"--images {folder}: training on the first {index} of {len(files)} images "
                 f"({total // 10**6} megapixels are plenty)")
            break
        image = shrunk(read_rgb8(path))
        if min(image.shape[-2:]) >= side:
            images.append(image)
            total += image.shape[-1] * image.shape[-2]
        else:
            small.append(path)
    if not images:
        raise DNIError(f"--images {folder}: no image is at least {side} px on each side, the "
                       "size of the training crops (use larger images or a smaller --patch)")
    for path in small:
        warn(f"{path}: skipped, smaller than the {side} px training crops")
    return images


def example_pairs(inputs: Path, targets: Path, scale: int, patch: int,
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input, target) images matched by file name without suffix; each target must be
    `scale` times its input's size."""
    by_stem = {p.stem: p for p in image_files(targets, "--pairs")}
    pairs = []
    for path in image_files(inputs, "--pairs"):
        target_path = by_stem.get(path.stem)
        if target_path is None:
            raise DNIError(f"--pairs: {path} has no target of the same name in {targets}")
        low, high = read_rgb8(path), read_rgb8(target_path)
        want = (low.shape[1] * scale, low.shape[2] * scale)
        if tuple(high.shape[1:]) != want:
            raise DNIError(f"--pairs: {target_path} is {high.shape[2]}x{high.shape[1]} but "
                           f"must be {want[1]}x{want[0]}: its input {path.name} times the "
                           f"network's scale ({scale})")
        pairs.append((low, high))
    if not any(min(low.shape[-2:]) >= patch for low, _ in pairs):
        raise DNIError(f"--pairs {inputs}: no input image is at least {patch} px on each side, "
                       "the size of the training crops (use a smaller --patch)")
    return pairs


class Batches:
    """Draws (input, target) batches from seeded generators."""

    def generators(self) -> list[torch.Generator]:
        raise NotImplementedError

    def __call__(self, batch: int) -> Batch:
        raise NotImplementedError

    def reseed(self, seed: int) -> None:
        for offset, generator in enumerate(self.generators()):
            generator.manual_seed(seed + offset)

    def fixed(self, count: int, seed: int) -> Batch:
        """A batch that depends on `seed` only; the training stream is left as it was."""
        saved = [g.get_state() for g in self.generators()]
        self.reseed(seed)
        batch = self(count)
        for generator, state in zip(self.generators(), saved, strict=True):
            generator.set_state(state)
        return batch


class SyntheticBatches(Batches):
    """Clean crops as targets; reduced and degraded copies as inputs."""

    def __init__(self, images: list[torch.Tensor], effect: Effect, patch: int, scale: int,
                 seed: int) -> None:
        self.effect, self.patch, self.scale = effect, patch, scale
        self.sampler = CropSampler(images, (patch + effect.margin) * scale, seed=seed)
        self.generator = torch.Generator().manual_seed(seed + 1)

    def generators(self) -> list[torch.Generator]:
        return [self.sampler.g, self.generator]

    def __call__(self, batch: int) -> Batch:
        clean = self.sampler(batch)
        degraded = self.effect.apply(downscaled(clean, self.scale), self.generator)
        margin, p, s = self.effect.margin, self.patch, self.scale
        if not margin:
            return degraded, clean
        # Crops start anywhere in the first block: every phase of the JPEG grid.
        y, x = torch.randint(0, margin + 1, (2,), generator=self.generator).tolist()
        return (degraded[..., y:y + p, x:x + p],
                clean[..., y * s:(y + p) * s, x * s:(x + p) * s])


class PairBatches(Batches):
    """Aligned crops of example pairs."""

    def __init__(self, pairs: list[tuple[torch.Tensor, torch.Tensor]], patch: int, scale: int,
                 seed: int) -> None:
        self.sampler = PairSampler(pairs, patch, scale, seed=seed)

    def generators(self) -> list[torch.Generator]:
        return [self.sampler.g]

    def __call__(self, batch: int) -> Batch:
        return self.sampler(batch)
