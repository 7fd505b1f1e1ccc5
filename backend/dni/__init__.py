"""Deep Network Interpolation for image filters: the engine and its Python API.

    import dni
    fam = dni.load_family("denoise")
    out = fam.apply(img, strength=0.4)           # numpy in, numpy out (same dtype/channels)
    sd = dni.interpolate([sd_a, sd_b], [0.3, 0.7])
    rho = dni.correlation(weight_a, weight_b)     # paper eq. 3, one value per filter

Names are imported on first use, so `dni families` and other light commands start
without loading torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dni_client.version import VERSION as __version__  # noqa: F401 - one release for all

_LAZY = {
    "interpolate": "blend", "correlation": "correlation",
    "correlation_report": "correlation", "Engine": "engine", "Cancelled": "errors",
    "DNIError": "errors", "Family": "family", "Manifest": "manifest",
    "read_state_dict": "checkpoints",
}
__all__ = [*sorted(_LAZY), "families", "load_family"]

if TYPE_CHECKING:
    from .family import Family
    from .manifest import Manifest


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'dni' has no attribute {name!r}")


def load_family(name_or_folder: str | Path, device: str = "auto", precision: str = "auto",
                family_paths: Sequence[Path] | None = None) -> Family:
    """Load a family by name (searched in the family folders) or from its folder."""
    from .family import Family
    from .manifest import MANIFEST_NAME, load_manifest
    from .registry import find_family, search_paths

    folder = Path(name_or_folder)
    if folder.is_dir() and (folder / MANIFEST_NAME).is_file():
        manifest = load_manifest(folder)
    else:
        manifest = find_family(str(name_or_folder), search_paths(list(family_paths or [])))
    return Family(manifest, device=device, precision=precision)


def families(family_paths: Sequence[Path] | None = None) -> list[Manifest]:
    from .registry import list_manifests, search_paths

    return list_manifests(search_paths(list(family_paths or [])))[0]
