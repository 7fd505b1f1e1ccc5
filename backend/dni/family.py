"""A family loaded and warm on a device: the live model, its blender and `apply`.

The data path of one call: caller's array -> float planes -> passes (which weighting,
with what per-pixel coefficient) -> tiles through the live model -> feathered sum ->
the caller's dtype. A pass is one weighting of the members; a plain call has one, a
strength map a few levels blended per pixel, the pixel-blend baseline one per member.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import auto_strength, imaging
from .blend import Blender
from .checkpoints import build_model_with_multiple, check_compatible, read_state_dict
from .device import autocast_dtype, is_out_of_memory, memory_budget, resolve_device
from .errors import Cancelled, DNIError, ImageError, WeightsError
from .manifest import Manifest
from .tiling import Tile, plan_tiles
from .weighting import normalised_positions, strength_to_weights, validate_weights

Progress = Callable[[float, str], None]
MIN_TILE = 32
STRENGTH_MAP_LEVELS = 5
# Tiles narrower than this are padded (by repeating their edge) before the network sees
# them: reflection pads and strided layers need a few pixels (the stylize net, a 9x9
# reflection pad and two halvings, needs 8), and an image of 4 px is still an image.
MIN_INPUT_SIDE = 16


@dataclass(frozen=True)
class Pass:
    weights: tuple[float, ...]
    stops: tuple[float, ...] | None = None  # strength-map levels this pass is a hat over
    index: int = 0  # which stop is this pass's peak
    constant: float = 1.0  # coefficient when there is no strength map


def _padded_side(side: int, multiple: int) -> int:
    """The side a tile is padded to: at least MIN_INPUT_SIDE, on the model's grid."""
    target = max(side, MIN_INPUT_SIDE)
    return target + -target % multiple


def _probe_size_multiple(model: nn.Module, scale: int) -> int:
    """Smallest m such that inputs of an odd multiple of m come back scaled exactly."""
    for multiple in (1, 2, 4, 8, 16):
        side = 3 * multiple if multiple > 2 else 9 * multiple
        try:
            with torch.inference_mode():
                out = model(torch.zeros(1, 3, side, side))
        except RuntimeError:
            continue
        if tuple(out.shape[-2:]) == (side * scale, side * scale):
            return multiple
    raise DNIError("the architecture does not return an image of the expected size")


def _largest_activation(model: nn.Module, multiple: int) -> float:
    """Values in the largest convolution output per input pixel, measured on a small
    probe: a U-Net's wide layers run at a fraction of the resolution, so channel counts
    alone overstate its memory."""
    side = 8 * max(4, multiple)
    largest = 0

    def record(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        nonlocal largest
        largest = max(largest, output.numel())

    hooks = [m.register_forward_hook(record) for m in model.modules()
             if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, side, side))
    finally:
        for hook in hooks:
            hook.remove()
    return largest / side**2 if largest else 64.0


class _TileProgress:
    """Progress inside one tile, counted in the convolutions it has started: a big tile on
    a CPU takes seconds, and a bar stuck at 0 % looks like a hang."""

    def __init__(self, report: Progress, done: int, total: int, convs: int) -> None:
        self.report, self.done, self.total, self.convs = report, done, total, convs
        self.seen = 0
        self.last = done / total

    def conv_started(self) -> None:
        self.seen += 1
        fraction = (self.done + min(self.seen / self.convs, 0.99)) / self.total
        if fraction - self.last >= 0.01:  # a step the bar can show, not a flood of events
            self.last = fraction
            self.report(fraction, "inference")


class Family:
    """One family, loaded once: a new weighting is a memory-speed write into the model."""

    def __init__(self, manifest: Manifest, device: str = "auto", precision: str = "auto",
                 max_pixels: int = imaging.DEFAULT_MAX_PIXELS) -> None:
        self.manifest = manifest
        self.device = resolve_device(device)
        self.autocast = autocast_dtype(self.device, precision)
        self.max_pixels = max_pixels
        labels = [m.label for m in manifest.members]
        raw = [read_state_dict(m.file) for m in manifest.members]
        check_compatible(raw, labels)
        built = [build_model_with_multiple(manifest.architecture,
                                           manifest.architecture_options, sd, str(m.file))
                 for sd, m in zip(raw, manifest.members, strict=True)]
        model, multiple = built[0]
        # The model's own state dict normalises keys (spandrel may rename them).
        states = [m.state_dict() for m, _ in built]
        del built, raw
        self.size_multiple = multiple or _probe_size_multiple(model, manifest.scale)
        self._activation = _largest_activation(model, self.size_multiple)
        self.model = model.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.blender = Blender(self.model, states, channels_last=True)
        # Checked before every convolution too, so that a cancel (a newer preview) does
        # not wait for a whole tile: a big tile on a CPU takes seconds.
        self._cancelled: Callable[[], bool] | None = None
        self._tile_progress: _TileProgress | None = None
        self._call_autocast = self.autocast
        convs = [m for m in self.model.modules() if isinstance(m, nn.Conv2d)]
        self._conv_count = max(1, len(convs))
        for module in convs:
            module.register_forward_pre_hook(self._before_conv)

    def _before_conv(self, _module: nn.Module, _inputs: object) -> None:
        if self._cancelled is not None and self._cancelled():
            raise Cancelled("cancelled")
        if self._tile_progress is not None:
            self._tile_progress.conv_started()

    # -- weightings ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def scale(self) -> int:
        return self.manifest.scale

    def weights_for(self, strength: float | None = None,
                    weights: Sequence[float] | None = None) -> tuple[float, ...]:
        if (strength is None) == (weights is None):
            raise WeightsError("give either a strength or weights, not both or neither")
        if weights is not None:
            return validate_weights(weights, len(self.manifest.members))
        return strength_to_weights(strength, self.manifest.positions)  # type: ignore[arg-type]

    def model_at(self, *, strength: float | None = None,
                 weights: Sequence[float] | None = None) -> nn.Module:
        """The live eval-mode model with this weighting written in (valid until the next
        call that changes the weights): for callers that run whole tensors themselves
        (the report, `dni inspect`)."""
        self.blender.set_weights(self.weights_for(strength, weights))
        return self.model

    def _passes(self, weights: tuple[float, ...] | None, strength_map: np.ndarray | None,
                mode: str) -> list[Pass]:
        count = len(self.manifest.members)
        onehot = [tuple(float(i == j) for j in range(count)) for i in range(count)]
        if strength_map is None:
            assert weights is not None
            if mode == "network":
                return [Pass(weights)]
            return [Pass(onehot[i], constant=w) for i, w in enumerate(weights) if w > 0]
        if mode == "network":
            lo, hi = float(strength_map.min()), float(strength_map.max())
            levels = 1 if hi - lo < 1e-6 else STRENGTH_MAP_LEVELS
            stops = tuple(np.linspace(lo, hi, levels).tolist())
            return [Pass(strength_to_weights(s, self.manifest.positions), stops, i)
                    for i, s in enumerate(stops)]
        stops = tuple(normalised_positions(self.manifest.positions))
        return [Pass(onehot[i], stops, i) for i in range(count)]

    # -- running ------------------------------------------------------------------
    def apply(self, image: np.ndarray, *, strength: float | str | None = None,
              weights: Sequence[float] | None = None, mask: np.ndarray | None = None,
              strength_map: np.ndarray | str | None = None, mode: str = "network",
              tile: int | None = None, progress: Progress | None = None,
              cancelled: Callable[[], bool] | None = None,
              precision: str | None = None) -> np.ndarray:
        """Filter `image` (HxW[xC], uint8/uint16/float) and return it in the same format.

        `precision` overrides the family's for this call (see device.autocast_dtype).
        `strength="auto"` or `strength_map="auto"` read the strength off the image, for
        families whose axis says what it measures (dni.auto_strength)."""
        if mode not in ("network", "pixel"):
            raise DNIError(f"mode must be 'network' or 'pixel', not {mode!r}")
        if strength_map is not None and (weights is not None or strength is not None):
            raise WeightsError("a strength map sets the strength pixel by pixel: give no "
                               "strength or weights with it")
        fmt = imaging.describe(image, self.max_pixels)
        strength, strength_map, _found = auto_strength.resolve(self.manifest, image, strength,
                                                               strength_map)
        size = image.shape[:2]
        w = None if strength_map is not None else self.weights_for(strength, weights)
        unit_mask = None if mask is None else imaging.as_unit_map(mask, size, "mask")
        unit_map = None if strength_map is None else imaging.as_unit_map(
            strength_map, size, "strength map")
        if tile is not None and tile < MIN_TILE:
            raise ImageError(f"tile size must be at least {MIN_TILE} pixels")

        passes = self._passes(w, unit_map, mode)
        # A caller's tile may be smaller than the engine's choice, never larger: that is
        # the largest tile whose activations fit the device's memory budget.
        side = min(tile, self.auto_tile()) if tile else self.auto_tile()
        while True:
            writer = imaging.Writer(image, fmt, self.scale, unit_mask)
            self._cancelled = cancelled
            self._call_autocast = self.autocast if precision is None else \
                autocast_dtype(self.device, precision)
            try:
                self._stream(image, passes, side, unit_mask, unit_map, writer, progress,
                             cancelled)
                return writer.result
            except (RuntimeError, torch.OutOfMemoryError) as exc:
                if not is_out_of_memory(exc) or side <= MIN_TILE:
                    raise
                del writer
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                side = max(MIN_TILE, side // 2)  # out of memory: retry with smaller tiles
            finally:
                self._cancelled = None

    def auto_tile(self) -> int:
        """Largest tile whose activations fit in the device's memory budget: about six
        live tensors the size of the largest activation, or of the upscaled output."""
        per_pixel = 4 * 6 * max(self._activation, 3 * self.scale**2)
        side = int(math.sqrt(memory_budget(self.device) / per_pixel)) - 2 * self.manifest.tile_pad
        side = max(MIN_TILE, min(2048, side))
        step = max(32, self.size_multiple)
        return max(step, side // step * step)

    def _coefficient(self, job: Pass, tile: Tile, size: tuple[int, int],
                     mask: np.ndarray | None, smap: np.ndarray | None) -> np.ndarray | float:
        """How much of this pass each output pixel of the tile takes (0 skips the tile)."""
        coef: np.ndarray | float = job.constant
        if job.stops is not None and smap is not None and len(job.stops) > 1:
            peak = np.zeros(len(job.stops), dtype=np.float32)
            peak[job.index] = 1.0
            values = imaging.upscaled(imaging.crop_of(smap), size, tile.dst, self.scale)
            coef = np.interp(values, job.stops, peak).astype(np.float32)
        if mask is not None:
            coef = imaging.upscaled(imaging.crop_of(mask), size, tile.dst, self.scale) * coef
        return coef

    def _stream(self, image: np.ndarray, passes: list[Pass], side: int,
                mask: np.ndarray | None, smap: np.ndarray | None, writer: imaging.Writer,
                progress: Progress | None, cancelled: Callable[[], bool] | None) -> None:
        """Run tile row by tile row; rows no later tile touches go to the writer at once,
        so memory holds about two tile rows of output, not the whole image."""
        scale = self.scale
        size = image.shape[:2]
        tiles = plan_tiles(size[0], size[1], side, self.manifest.tile_pad, scale,
                           self.size_multiple)
        rows: dict[int, list[Tile]] = {}
        for t in tiles:
            rows.setdefault(t.dst[0], []).append(t)
        row_starts = sorted(rows)
        total = len(tiles) * len(passes)
        done = 0
        out_width = size[1] * scale
        carry_from, carry = 0, np.zeros((3, 0, out_width), dtype=np.float32)
        for r, start in enumerate(row_starts):
            end = rows[start][0].dst[1]
            acc = np.zeros((3, end - carry_from, out_width), dtype=np.float32)
            acc[:, :carry.shape[1]] = carry
            acc_t = torch.from_numpy(acc)  # the same memory: torch adds on every core
            for job in passes:
                for t in rows[start]:
                    if cancelled is not None and cancelled():
                        raise Cancelled("cancelled")
                    coef = self._coefficient(job, t, size, mask, smap)
                    if np.any(coef):
                        if progress is not None:
                            self._tile_progress = _TileProgress(progress, done, total,
                                                                self._conv_count)
                        try:
                            self._add_tile(image, job, t, coef,
                                           acc_t[:, t.dst[0] - carry_from:t.dst[1] - carry_from,
                                                 t.dst[2]:t.dst[3]])
                        finally:
                            self._tile_progress = None
                    done += 1
                    if progress is not None:
                        progress(done / total, "inference")
            final_to = row_starts[r + 1] if r + 1 < len(row_starts) else end
            writer.write(carry_from, acc[:, :final_to - carry_from])
            carry, carry_from = acc[:, final_to - carry_from:], final_to

    def _add_tile(self, image: np.ndarray, job: Pass, t: Tile, coef: np.ndarray,
                  target: torch.Tensor) -> None:
        """One pass over one tile, added into its box of the output with its weights."""
        if self.blender.current != job.weights:
            self.blender.set_weights(job.weights)
        result = self._forward(image, t)
        weight = t.weights() * coef
        if np.all(weight == 1.0):  # e.g. one tile covering the image
            target += result
        else:
            target.addcmul_(result, torch.from_numpy(weight))

    @torch.inference_mode()
    def _forward(self, image: np.ndarray, t: Tile) -> torch.Tensor:
        """The tile's output over its dst box: float32 (3, h, w) on the CPU."""
        sy0, sy1, sx0, sx1 = t.src
        x = torch.from_numpy(imaging.rgb_tile(image, t.src)).unsqueeze(0).to(self.device)
        h, w = x.shape[-2:]
        m = self.size_multiple
        pad_h, pad_w = _padded_side(h, m) - h, _padded_side(w, m) - w
        if pad_h or pad_w:
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        x = x.contiguous(memory_format=torch.channels_last)
        if self._call_autocast is not None:
            with torch.autocast(self.device.type, dtype=self._call_autocast):
                y = self.model(x)
        else:
            y = self.model(x)
        s = self.scale
        dy0, dy1, dx0, dx1 = t.dst
        oy, ox = sy0 * s, sx0 * s
        y = y[0, :, dy0 - oy:dy1 - oy, dx0 - ox:dx1 - ox]
        return y.float().cpu()
