"""Classical denoisers the denoise family is measured against, with cached outputs.

BM3D takes seconds per crop on a CPU, so every output is kept in models/.data/report-cache/
(delete it to recompute). Blur and NLM are tuned per image against the clean crop: an
oracle choice that flatters them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .common import CACHE, psnr

BLUR_WIDTHS = (0.6, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5)
NLM_FACTORS = (0.6, 0.8, 1.0, 1.2)  # h = factor * sigma

Denoiser = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]  # clean, noisy, sigma


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy().astype(np.float32)


def blur(clean: torch.Tensor, noisy_x: torch.Tensor, sigma: int) -> torch.Tensor:
    """The floor any learnt denoiser should clear: the best Gaussian blur."""
    from torchvision.transforms.functional import gaussian_blur

    return max((gaussian_blur(noisy_x, 2 * int(3 * width + 0.5) + 1, width)
                for width in BLUR_WIDTHS), key=lambda out: psnr(out, clean))


def bm3d(clean: torch.Tensor, noisy_x: torch.Tensor, sigma: int) -> torch.Tensor:
    """`bm3d.bm3d_rgb` told the true sigma."""
    import bm3d as bm3d_lib

    out = bm3d_lib.bm3d_rgb(_hwc(noisy_x), sigma / 255.0)
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)[None].float()


def nlm(clean: torch.Tensor, noisy_x: torch.Tensor, sigma: int) -> torch.Tensor:
    """OpenCV's coloured non-local means with the best filter strength h."""
    import cv2

    # NLM takes 8-bit input only: the noise is clipped and rounded.
    u8 = (np.clip(_hwc(noisy_x), 0, 1) * 255).round().astype(np.uint8)
    best, result = -1.0, None
    for factor in NLM_FACTORS:
        h = factor * sigma
        out = cv2.fastNlMeansDenoisingColored(u8[..., ::-1].copy(), None, h, h, 7, 21)
        cand = torch.from_numpy(out[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)[None]
        score = psnr(cand, clean)
        if score > best:
            best, result = score, cand
    assert result is not None
    return result


DENOISERS: dict[str, Denoiser] = {"blur": blur, "nlm": nlm, "bm3d": bm3d}


def classical(kind: str, clean: torch.Tensor, noisy_x: torch.Tensor, sigma: int,
              key: str) -> torch.Tensor:
    """The output of denoiser `kind` ("blur", "nlm" or "bm3d"), from the cache if there."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{kind}-{key}-{sigma}.npy"
    if path.exists():
        return torch.from_numpy(np.load(path))
    result = DENOISERS[kind](clean, noisy_x, sigma)
    np.save(path, result.numpy())
    return result
