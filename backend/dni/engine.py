"""The engine: families kept warm on one device, looked up by name.

One Engine per device; the server runs it on a single worker thread, scripters call it
directly. Loading a family reads and stacks its members once; later calls only re-weight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import imaging
from .auto_strength import Estimate, estimate
from .device import resolve_device
from .family import Family, Progress
from .registry import find_family, list_manifests, search_paths


class Engine:
    def __init__(self, device: str = "auto", family_paths: Sequence[Path] | None = None,
                 precision: str = "auto", max_pixels: int = imaging.DEFAULT_MAX_PIXELS) -> None:
        self._device_name = str(resolve_device(device))
        self._paths = search_paths([Path(p) for p in family_paths or []])
        self._precision = precision
        self._max_pixels = max_pixels
        self._warm: dict[str, Family] = {}
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        return self._device_name

    def families(self) -> list[dict[str, Any]]:
        manifests, _problems = list_manifests(self._paths)
        return [m.to_dict() for m in manifests]

    def family(self, name: str) -> Family:
        """The warm family, loading it on first use (or after its manifest changed).

        Cheap when nothing changed: the registry re-reads a manifest only when its file's
        modification stamp moved, so a job costs a few stat calls here, no TOML.
        """
        with self._lock:
            manifest = find_family(name, self._paths)
            warm = self._warm.get(name)
            if warm is None or warm.manifest != manifest:
                warm = Family(manifest, self._device_name, self._precision, self._max_pixels)
                self._warm[name] = warm
            return warm

    def estimate(self, family: str, image: np.ndarray, per_region: bool = False) -> Estimate:
        """The strength (or map) `auto` would pick for this image; the family's manifest
        is enough, its weights are not loaded."""
        return estimate(find_family(family, self._paths), image, per_region=per_region)

    def run(self, family: str, image: np.ndarray, *, strength: float | str | None = None,
            weights: Sequence[float] | None = None, mask: np.ndarray | None = None,
            strength_map: np.ndarray | str | None = None, mode: str = "network",
            tile: int | None = None, progress: Progress | None = None,
            cancelled: Callable[[], bool] | None = None,
            precision: str | None = None) -> np.ndarray:
        return self.family(family).apply(
            image, strength=strength, weights=weights, mask=mask, strength_map=strength_map,
            mode=mode, tile=tile, progress=progress, cancelled=cancelled, precision=precision)
