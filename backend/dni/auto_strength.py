"""`auto`: a family's strength read off the image itself.

A family says what its axis positions measure (family.toml: `[axis] measures =
"noise-sigma"`); `MEASURES` says how to read that off an image. The reading (a sigma, a
JPEG quality) becomes a strength through the members' positions, by the one rule in
`dni_client.mixing.position_to_strength`: the member trained at sigma 25 sits at sigma 25.

    estimate(manifest, image)                   -> Estimate(value=27.1, strength=0.35)
    estimate(manifest, image, per_region=True)  -> .strength_map, smooth, (H, W) in [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import jpeg_quality, noise_level
from .errors import WeightsError
from .manifest import Manifest
from .weighting import position_to_strength

AUTO = "auto"

# (values at window centres, the centres' y, the centres' x)
Grid = tuple[np.ndarray, list[float], list[float]]


@dataclass(frozen=True)
class Measure:
    """How to read one kind of axis off an image, in the units of the members' positions."""

    title: str
    value: Callable[[np.ndarray, Path | None], float]  # (image, its file if known)
    grid: Callable[[np.ndarray], Grid] | None = None  # per region; None: whole image only


MEASURES: dict[str, Measure] = {
    "noise-sigma": Measure("noise sigma (0-255)",
                           lambda image, _source: noise_level.image_sigma(image),
                           noise_level.sigma_grid),
    # From a JPEG file's quantisation tables, else from the pixels; whole image only.
    "jpeg-quality": Measure("JPEG quality (1-100)", jpeg_quality.axis_value),
}


@dataclass(frozen=True)
class Estimate:
    measures: str
    value: float  # for the whole image, in the axis's units
    strength: float
    strength_map: np.ndarray | None = None  # float32 (H, W) in [0, 1], when asked for

    def to_json(self) -> dict[str, Any]:
        return {"measures": self.measures, "value": round(self.value, 3),
                "strength": round(self.strength, 4)}


def refusal(family: str, axis_name: str) -> WeightsError:
    """The error for `auto` on a family whose axis measures nothing in an image."""
    return WeightsError(f"family {family!r} cannot set its strength automatically: its axis "
                        f"({axis_name}) is not something dni can measure in an image, such "
                        "as a noise level; give a strength or weights")


def measure_of(manifest: Manifest) -> Measure:
    """The family's measure, or one clear WeightsError saying why `auto` cannot work."""
    name = manifest.axis_measures
    if name is None:
        raise refusal(manifest.name, manifest.axis_name)
    if name not in MEASURES:
        raise WeightsError(f"family {manifest.name!r}: its axis measures {name!r}, which this "
                           f"dni cannot estimate (it knows {', '.join(sorted(MEASURES))})")
    return MEASURES[name]


def estimate(manifest: Manifest, image: np.ndarray, *, per_region: bool = False,
             source: Path | None = None) -> Estimate:
    """The strength this image needs (and, `per_region`, a strength map)."""
    measure = measure_of(manifest)
    positions = manifest.positions
    value = measure.value(image, source)
    strength = position_to_strength(value, positions)
    if not per_region:
        return Estimate(manifest.axis_measures or "", value, strength)
    if measure.grid is None:
        raise WeightsError(f"family {manifest.name!r} can set one strength automatically "
                           "(--strength auto), not a strength per region")
    values, ys, xs = measure.grid(image)
    strengths = np.vectorize(lambda v: position_to_strength(float(v), positions))(values)
    smap = noise_level.grid_to_pixels(strengths, ys, xs, image.shape[:2])
    return Estimate(manifest.axis_measures or "", value, strength, np.clip(smap, 0.0, 1.0))


def describe(found: dict[str, Any]) -> str:
    """One line for the user, from `Estimate.to_json()` (also what a server reports)."""
    measure = MEASURES.get(str(found.get("measures")))
    title = measure.title if measure else str(found.get("measures"))
    return f"auto: {title} {float(found.get('value', 0)):.1f} -> strength " \
           f"{float(found.get('strength', 0)):.2f}"


def is_auto(value: object) -> bool:
    """`value` asks for auto; any other text is refused here, once, in plain words."""
    if not isinstance(value, str):
        return False
    if value != AUTO:
        raise WeightsError(f"a strength is a number between 0 and 1 or '{AUTO}', not {value!r}")
    return True


def resolve(manifest: Manifest, image: np.ndarray, strength: Any, strength_map: Any,
            source: Path | None = None) -> tuple[Any, Any, Estimate | None]:
    """(strength, strength_map) with `auto` replaced by the estimate, and the estimate.
    `source` is the image's file, when there is one (a measure may read its header)."""
    by_map = is_auto(strength_map)
    if not (by_map or is_auto(strength)):
        return strength, strength_map, None
    if by_map and strength is not None:
        raise WeightsError("a strength map sets the strength pixel by pixel: give no "
                           "strength or weights with it")
    found = estimate(manifest, image, per_region=by_map, source=source)
    if by_map:
        return None, found.strength_map, found
    return found.strength, strength_map, found
