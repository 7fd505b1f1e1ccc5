"""Deep Network Interpolation for image filters: the engine and its Python API.

    import dni
    fam = dni.load_family("denoise")
    out = fam.apply(img, strength=0.4)           # numpy in, numpy out (same dtype/channels)
    sd = dni.interpolate([sd_a, sd_b], [0.3, 0.7])
    rho = dni.correlation(weight_a, weight_b)     # paper eq. 3, one value per filter
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .blend import interpolate
from .correlation import correlation, correlation_report
from .engine import Engine
from .errors import Cancelled, DNIError
from .family import Family
from .manifest import Manifest, load_manifest
from .registry import find_family, list_manifests, search_paths
from .weights import read_state_dict

__version__ = "0.1.0"
__all__ = [
    "Cancelled", "DNIError", "Engine", "Family", "Manifest", "correlation",
    "correlation_report", "families", "interpolate", "load_family", "read_state_dict",
]


def load_family(name_or_folder: str | Path, device: str = "auto", precision: str = "auto",
                family_paths: Sequence[Path] | None = None) -> Family:
    """Load a family by name (searched in the family folders) or from its folder."""
    folder = Path(name_or_folder)
    if folder.is_dir() and (folder / "family.toml").is_file():
        manifest = load_manifest(folder)
    else:
        manifest = find_family(str(name_or_folder), search_paths(list(family_paths or [])))
    return Family(manifest, device=device, precision=precision)


def families(family_paths: Sequence[Path] | None = None) -> list[Manifest]:
    return list_manifests(search_paths(list(family_paths or [])))[0]
