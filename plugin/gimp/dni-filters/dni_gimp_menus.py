"""The plug-in's menu entries. No dni_client or pyzmq here: GIMP must be able to register
the filters even when pyzmq is missing, so that running one explains what to do (menus
that silently vanish are what users of other GIMP plug-ins complain about most)."""

from __future__ import annotations

from typing import NamedTuple


class FilterSpec(NamedTuple):
    """One menu entry."""

    procedure: str
    task: str
    label: str
    menu: str
    blurb: str


PROCEDURES = {
    spec.procedure: spec for spec in (
        FilterSpec("plug-in-dni-denoise", "denoise", "DNI _Denoise...",
                   "<Image>/Filters/Enhance",
                   "Remove noise, with a slider between a gentle and a strong denoiser"),
        FilterSpec("plug-in-dni-super-resolve", "super-resolve", "DNI _Super-Resolve...",
                   "<Image>/Filters/Enhance",
                   "Enlarge the image with a super-resolution network (the selection, or "
                   "the whole layer, is computed by the network)"),
        FilterSpec("plug-in-dni-stylize", "stylize", "DNI St_ylize...",
                   "<Image>/Filters/Artistic",
                   "Paint in a style, or a mix of several styles"),
    )
}
