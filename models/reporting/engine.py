"""A family as the report uses it: the engine's `dni.Family`, run on whole tensors.

The engine does all the blending: a weighting is written into its live model by its
blender, the same code path the editors' sliders take. The report then calls that model
directly instead of `Family.apply`, because it feeds unclipped noisy tensors and times
bare forward passes; tiling and dtype conversion would only add noise to the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

import dni
from dni.checkpoints import StateDict


class ReportFamily:
    def __init__(self, folder: Path) -> None:
        # CPU and fp32: the report's numbers and timings are for the CPU path.
        self.engine = dni.load_family(folder, device="cpu", precision="fp32")
        self.manifest = self.engine.manifest
        self.labels = [m.label for m in self.manifest.members]

    def model_at(self, *, strength: float | None = None,
                 weights: Sequence[float] | None = None) -> nn.Module:
        """The engine's live, eval-mode model set to a strength or to member weights."""
        return self.engine.model_at(strength=strength, weights=weights)

    def run(self, x: torch.Tensor, *, strength: float | None = None,
            weights: Sequence[float] | None = None) -> torch.Tensor:
        """The model's output for a 1x3xHxW tensor, clipped to [0, 1]."""
        model = self.model_at(strength=strength, weights=weights)
        with torch.inference_mode():
            return model(x).clamp(0, 1)

    def member_states(self) -> list[StateDict]:
        """The members' weights as stored (fp32), for the filter correlation (eq. 3)."""
        return [{k: v.float() for k, v in dni.read_state_dict(m.file).items()}
                for m in self.manifest.members]
