"""Training machinery shared by `dni finetune` and the recipes in models/recipes/: random
crops, a learning-rate schedule, resumable checkpoints and a stop flag for signals.

It lives in the installed package because users run `dni finetune` from the wheel, which
does not carry models/recipes/ (the recipes import it from here).

Checkpoints are safetensors only (model + Adam moments + JSON metadata): nothing is ever
unpickled.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def _augmented(crops: list[torch.Tensor], flips: list[int]) -> list[torch.Tensor]:
    """The same flips and transpose on every crop (an input and its target stay aligned)."""
    out = []
    for crop in crops:
        if flips[0]:
            crop = crop.flip(-1)
        if flips[1]:
            crop = crop.flip(-2)
        if flips[2]:
            crop = crop.transpose(-1, -2)
        out.append(crop)
    return out


class CropSampler:
    """Random crops with flips/transposes from a list of 3xHxW uint8 tensors."""

    def __init__(self, images: list[torch.Tensor], patch: int, seed: int = 0) -> None:
        self.images = [im for im in images if min(im.shape[-2:]) >= patch]
        if not self.images:
            raise ValueError(f"no training image is at least {patch} px on each side")
        # Bigger images are drawn more often: roughly uniform over pixels.
        areas = torch.tensor([im.shape[-1] * im.shape[-2] for im in self.images], dtype=torch.float)
        self.weights = areas / areas.sum()
        self.patch = patch
        self.g = torch.Generator().manual_seed(seed)

    def __call__(self, batch: int) -> torch.Tensor:
        picks = torch.multinomial(self.weights, batch, replacement=True, generator=self.g)
        out = []
        for i in picks.tolist():
            im = self.images[i]
            h, w = im.shape[-2:]
            y = int(torch.randint(0, h - self.patch + 1, (1,), generator=self.g))
            x = int(torch.randint(0, w - self.patch + 1, (1,), generator=self.g))
            crop = im[:, y:y + self.patch, x:x + self.patch]
            out += _augmented([crop], torch.randint(0, 2, (3,), generator=self.g).tolist())
        return torch.stack(out).float().div_(255.0)


class PairSampler:
    """Aligned random crops from (input, target) pairs of 3xHxW uint8 tensors, the target
    `scale` times the input's size: input crops of side `patch`, targets `patch * scale`."""

    def __init__(self, pairs: list[tuple[torch.Tensor, torch.Tensor]], patch: int, scale: int,
                 seed: int = 0) -> None:
        self.pairs = [p for p in pairs if min(p[0].shape[-2:]) >= patch]
        if not self.pairs:
            raise ValueError(f"no input image is at least {patch} px on each side")
        areas = torch.tensor([a.shape[-1] * a.shape[-2] for a, _ in self.pairs], dtype=torch.float)
        self.weights = areas / areas.sum()
        self.patch, self.scale = patch, scale
        self.g = torch.Generator().manual_seed(seed)

    def __call__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        picks = torch.multinomial(self.weights, batch, replacement=True, generator=self.g)
        inputs, targets = [], []
        p, s = self.patch, self.scale
        for i in picks.tolist():
            low, high = self.pairs[i]
            h, w = low.shape[-2:]
            y = int(torch.randint(0, h - p + 1, (1,), generator=self.g))
            x = int(torch.randint(0, w - p + 1, (1,), generator=self.g))
            flips = torch.randint(0, 2, (3,), generator=self.g).tolist()
            a, b = _augmented([low[:, y:y + p, x:x + p],
                               high[:, y * s:(y + p) * s, x * s:(x + p) * s]], flips)
            inputs.append(a)
            targets.append(b)
        return (torch.stack(inputs).float().div_(255.0),
                torch.stack(targets).float().div_(255.0))


def lr_at(progress: float, base: float, warmup_frac: float = 0.0) -> float:
    """Cosine decay to 2% of base, with an optional linear warm-up."""
    if warmup_frac > 0 and progress < warmup_frac:
        return base * max(progress / warmup_frac, 0.02)
    p = (progress - warmup_frac) / max(1e-8, 1 - warmup_frac)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


def save_checkpoint(path: Path, model: nn.Module, opts: dict[str, torch.optim.Optimizer],
                    meta: dict[str, Any]) -> None:
    """Model and optimiser state as safetensors, written beside `path` and renamed over it
    (an interrupted save leaves the previous checkpoint whole)."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    groups = {}
    for name, opt in opts.items():
        sd = opt.state_dict()
        groups[name] = sd["param_groups"]
        for idx, state in sd["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"opt.{name}.{idx}.{key}"] = value.detach().contiguous().clone()
    tmp = path.with_suffix(".tmp")
    save_file({k: v.cpu() for k, v in tensors.items()}, str(tmp),
              metadata={"meta": json.dumps(meta), "groups": json.dumps(groups)})
    os.replace(tmp, path)


def load_checkpoint(path: Path, model: nn.Module, opts: dict[str, torch.optim.Optimizer],
                    ) -> dict[str, Any]:
    """Fill `model` and `opts` from a `save_checkpoint` file; returns its metadata."""
    from safetensors import safe_open

    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    groups = json.loads(metadata["groups"])
    for name, opt in opts.items():
        state: dict[int, dict[str, torch.Tensor]] = {}
        prefix = f"opt.{name}."
        for k, v in tensors.items():
            if k.startswith(prefix):
                idx, key = k[len(prefix):].split(".", 1)
                state.setdefault(int(idx), {})[key] = v
        if name in groups:
            opt.load_state_dict({"state": state, "param_groups": groups[name]})
    return json.loads(metadata["meta"])


class StopFlag:
    """Set by the first Ctrl+C (SIGINT) or SIGTERM, so that a training loop stops between
    steps and saves what it has; a second signal interrupts at once, as usual."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __bool__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, _frame: object) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """A StopFlag that SIGINT and SIGTERM set while the block runs (the main thread only:
    elsewhere Python cannot take signals, and the flag stays clear)."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.signal(s, flag._handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
