"""The filters DNI offers, declared once: each is a task that family manifests name
(`task = "denoise"`). The backend accepts exactly these tasks, Krita builds Filter ▸ DNI
from this table and GIMP registers one procedure per entry, so a new filter is one entry
here plus a family folder. Pure Python, no pyzmq: GIMP reads it before pyzmq loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .families import FamilyInfo


class Filter(NamedTuple):
    task: str  # what family manifests say in `task = ...`
    title: str  # the menu text, without the trailing "…"
    blurb: str  # one line for tooltips and GIMP's procedure browser
    gimp_menu: str  # where GIMP lists it

    @property
    def gimp_procedure(self) -> str:
        return f"plug-in-dni-{self.task}"

    @property
    def lists_every_family(self) -> bool:
        """The catch-all entry: families of any task (so none is out of reach)."""
        return self.task == OTHER


OTHER = "other"

FILTERS = (
    Filter("denoise", "Denoise", "Remove noise, with a slider from a gentle to a strong "
           "denoiser", "<Image>/Filters/Enhance"),
    Filter("dejpeg", "Remove JPEG Artefacts", "Clean up JPEG blocks and ringing, with a "
           "slider from a light to a strong clean-up", "<Image>/Filters/Enhance"),
    Filter("super-resolve", "Super-Resolve", "Enlarge the image with a super-resolution "
           "network, from faithful to detailed", "<Image>/Filters/Enhance"),
    Filter("stylize", "Stylize", "Paint in a style, or a mix of several styles",
           "<Image>/Filters/Artistic"),
    Filter(OTHER, "Other Family", "Run any installed DNI family",
           "<Image>/Filters/Generic"),
)



def tasks() -> tuple[str, ...]:
    """The tasks a family manifest may name (read at call time: tests add filters)."""
    return tuple(f.task for f in FILTERS)


def filter_for(task: str) -> Filter:
    """The filter of a task; unknown tasks fall to the catch-all entry."""
    for entry in FILTERS:
        if entry.task == task:
            return entry
    return filter_for(OTHER)


def families_for(entry: Filter, families: Sequence[FamilyInfo]) -> list[FamilyInfo]:
    """The families a filter offers, by name: those made for its task (all of them for
    the catch-all entry)."""
    chosen = [f for f in families if entry.lists_every_family or f.task == entry.task]
    return sorted(chosen, key=lambda f: f.name)


def default_family(entry: Filter, families: Sequence[FamilyInfo]) -> FamilyInfo | None:
    """The family a filter starts with: the one named like its task, else the first."""
    offered = families_for(entry, families)
    for family in offered:
        if family.name == entry.task:
            return family
    return offered[0] if offered else None
