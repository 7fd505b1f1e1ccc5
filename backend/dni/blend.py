"""Deep network interpolation at memory speed.

`Blender` stacks the members' floating-point parameters and buffers once, per dtype,
into one contiguous (N, P) tensor on the device, and rebinds the live model's tensors
as views into one flat (P,) tensor. A new weighting is then a single fused op per dtype
group that writes straight into the model (copy, lerp or a 1xN by NxP product), with
no state-dict round trip and no allocation.

Slider drags move along one pair of members many times in a row. After the first two
moves on a pair, the difference of the two members is kept and each move becomes an
in-place `theta += (t_new - t_old) * (B - A)`: two reads and one write to memory the CPU
already holds, where a lerp into the live buffer also pays a read-for-ownership of it
(about 1.4x faster on a memory-bound CPU). Rounding in these steps is bounded by an
exact lerp every `EXACT_EVERY` moves, and members themselves are always exact copies.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from .checkpoints import StateDict
from .weighting import validate_weights

_Slot = tuple[nn.Module, str, bool]  # owner module, attribute name, is_parameter
# Incremental moves between exact lerps: at most this many roundings (a few ulps) pile up.
EXACT_EVERY = 16


def interpolate(state_dicts: Sequence[StateDict], weights: Sequence[float]) -> StateDict:
    """theta = sum_i w_i theta_i over float tensors; integer tensors come from the first.

    Plain function for scripters and `dni mix`; the live path uses `Blender`.
    """
    from .checkpoints import check_compatible

    w = validate_weights(weights, len(state_dicts))
    check_compatible(list(state_dicts), [f"model {i + 1}" for i in range(len(state_dicts))])
    out: StateDict = {}
    for key, first in state_dicts[0].items():
        if not first.is_floating_point():
            out[key] = first.clone()
            continue
        acc = torch.zeros(first.shape, dtype=torch.float64)
        for wi, sd in zip(w, state_dicts, strict=True):
            if wi:
                acc += wi * sd[key].to(torch.float64)
        out[key] = acc.to(first.dtype)
    return out


class Blender:
    """Writes convex combinations of member weights into one live model."""

    def __init__(self, model: nn.Module, member_states: Sequence[StateDict],
                 cache_bytes: int = 256 * 2**20, channels_last: bool = False) -> None:
        self.model = model
        # 4-D weights laid out channels-last inside the flat buffer: convolutions on
        # channels-last activations then need no weight reorder (a large win on CPUs).
        self.channels_last = channels_last
        self.count = len(member_states)
        self._groups: list[tuple[torch.Tensor, torch.Tensor]] = []  # (flat, stacked)
        self._current: tuple[float, ...] | None = None
        # Slider-drag state: the pair (i, j) the live weights lie on, t = weight of j, the
        # moves since the last exact write, and the kept differences B - A per group.
        self._pair: tuple[int, int] | None = None
        self._t = 0.0
        self._moves = 0
        self._deltas: list[torch.Tensor] | None = None
        self._delta_pair: tuple[int, int] | None = None
        self._cache: OrderedDict[tuple[float, ...], list[torch.Tensor]] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._bind(member_states)

    def _slots(self) -> list[tuple[str, _Slot, torch.Tensor]]:
        modules = dict(self.model.named_modules())
        slots = []
        for name, tensor in list(self.model.named_parameters()) + list(self.model.named_buffers()):
            if not tensor.is_floating_point():
                continue  # e.g. BatchNorm's num_batches_tracked: not interpolated
            owner_name, _, attr = name.rpartition(".")
            owner = modules[owner_name]
            slots.append((name, (owner, attr, attr in owner._parameters), tensor))
        return slots

    def _bind(self, member_states: Sequence[StateDict]) -> None:
        with torch.no_grad():  # integer buffers are not blended: they are the first member's
            for name, tensor in self.model.named_buffers():
                if not tensor.is_floating_point() and name in member_states[0]:
                    tensor.copy_(member_states[0][name])
        by_dtype: dict[torch.dtype, list[tuple[str, _Slot, torch.Tensor]]] = {}
        for entry in self._slots():
            by_dtype.setdefault(entry[2].dtype, []).append(entry)
        for dtype, entries in by_dtype.items():
            device = entries[0][2].device
            total = sum(t.numel() for _, _, t in entries)
            stacked = torch.empty((self.count, total), dtype=dtype, device=device)
            flat = torch.empty(total, dtype=dtype, device=device)
            offset = 0
            for name, (owner, attr, is_param), tensor in entries:
                n = tensor.numel()
                last = self.channels_last and tensor.dim() == 4
                for row, state in enumerate(member_states):
                    value = state[name].permute(0, 2, 3, 1) if last else state[name]
                    stacked[row, offset:offset + n].copy_(value.reshape(-1))
                view = flat[offset:offset + n]
                if last:  # (out, h, w, in) in memory, (out, in, h, w) to the model
                    out_c, in_c, kh, kw = tensor.shape
                    view = view.view(out_c, kh, kw, in_c).permute(0, 3, 1, 2)
                else:
                    view = view.view(tensor.shape)
                if is_param:
                    owner._parameters[attr].data = view
                else:
                    owner._buffers[attr] = view
                offset += n
            flat.copy_(stacked[0])  # start as the first member, never uninitialised
            self._groups.append((flat, stacked))
        self._current = tuple(float(i == 0) for i in range(self.count))
        self._pair = (0, 0)

    @property
    def parameter_count(self) -> int:
        return sum(flat.numel() for flat, _ in self._groups)

    @property
    def current(self) -> tuple[float, ...] | None:
        return self._current

    @torch.no_grad()
    def set_weights(self, weights: Sequence[float]) -> None:
        w = validate_weights(weights, self.count)
        if w == self._current:
            return
        active = [i for i, wi in enumerate(w) if wi != 0.0]
        cached = self._cache.get(w)
        pair, t = None, 0.0
        if cached is not None:
            self._cache.move_to_end(w)
            for (flat, _), saved in zip(self._groups, cached, strict=True):
                flat.copy_(saved)
        elif len(active) == 1:
            for flat, stacked in self._groups:
                flat.copy_(stacked[active[0]])  # exactly that member, bit for bit
            pair, t = (active[0], active[0]), 0.0
        elif len(active) == 2:
            i, j = active
            pair, t = (i, j), w[j] / (w[i] + w[j])
            self._move_along_pair(i, j, t)
        else:
            for flat, stacked in self._groups:
                coeffs = torch.tensor([w], dtype=stacked.dtype, device=stacked.device)
                torch.mm(coeffs, stacked, out=flat.view(1, -1))
            self._remember(w)  # a copy back is cheaper than this product; not than a lerp
        self._pair, self._t = pair, t
        self._current = w

    def _move_along_pair(self, i: int, j: int, t: float) -> None:
        # Only a move that starts inside the segment steps; a jump onto it (from a member,
        # another pair or the cache) is one exact lerp, so one-off applies keep no deltas.
        if self._pair == (i, j) and self._moves < EXACT_EVERY and self._incremental_ok():
            if self._delta_pair != (i, j):  # second move on this pair: keep B - A now
                self._keep_deltas(i, j)
            for (flat, _), delta in zip(self._groups, self._deltas or [], strict=True):
                flat.add_(delta, alpha=t - self._t)
            self._moves += 1
            return
        for flat, stacked in self._groups:
            torch.lerp(stacked[i], stacked[j], t, out=flat)
        self._moves = 0

    def _incremental_ok(self) -> bool:
        # Half-precision groups would gather visible rounding; they always lerp.
        return all(flat.dtype in (torch.float32, torch.float64) for flat, _ in self._groups)

    def _keep_deltas(self, i: int, j: int) -> None:
        if self._deltas is None:
            self._deltas = [torch.empty_like(flat) for flat, _ in self._groups]
        for (_, stacked), delta in zip(self._groups, self._deltas, strict=True):
            torch.sub(stacked[j], stacked[i], out=delta)
        self._delta_pair = (i, j)

    def _remember(self, w: tuple[float, ...]) -> None:
        size = sum(flat.numel() * flat.element_size() for flat, _ in self._groups)
        if size * 2 > self._cache_bytes:
            return
        while self._cache and size * (len(self._cache) + 1) > self._cache_bytes:
            self._cache.popitem(last=False)
        self._cache[w] = [flat.clone() for flat, _ in self._groups]
