"""Fake PyGObject entry point: `require_version` accepts what the plug-in asks for."""

from __future__ import annotations

FAKE = True
_versions: dict[str, str] = {}


def require_version(namespace: str, version: str) -> None:
    known = {"Gimp": "3.0", "GimpUi": "3.0", "Gegl": "0.4", "Gtk": "3.0"}
    if namespace in known and known[namespace] != version:
        raise ValueError(f"Namespace {namespace} not available for version {version}")
    _versions[namespace] = version
