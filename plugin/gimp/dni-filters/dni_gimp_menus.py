"""The plug-in's menu entries: one procedure per filter in dni_client.filters. No pyzmq
here: GIMP must be able to register the filters even when pyzmq is missing, so that
running one explains what to do."""

from __future__ import annotations

from dni_client import filters


def procedures() -> dict[str, filters.Filter]:
    """Procedure name -> filter (read at call time: tests add filters)."""
    return {f.gimp_procedure: f for f in filters.FILTERS}


def label(entry: filters.Filter) -> str:
    return f"DNI {entry.title}..."


# Not a filter: lists the catalogue and installs families (dni_gimp_get_families).
GET_FAMILIES = "plug-in-dni-get-families"
GET_FAMILIES_LABEL = "Get more DNI families..."
GET_FAMILIES_MENU = "<Image>/Filters/Generic"
