"""Shared set-up of the GIMP plug-in tests: the fake gi.repository, the plug-in modules,
a real `dni serve` with test families, and small image helpers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from conftest import correlated_states, make_families, write_family

FAKES = Path(__file__).resolve().parent
TESTS = FAKES.parent
PLUGIN_DIR = TESTS.parent / "plugin" / "gimp" / "dni-filters"
PLUGIN_MODULES = ("dni_gimp", "dni_gimp_dialog", "dni_gimp_paths", "dni_gimp_menus",
                  "dni_filters_entry")
TINY_X4 = {"features": 8, "layers": 3, "scale": 4}


def load_fakes() -> dict[str, ModuleType]:
    """Import the plug-in against the fake gi; returns {name: module}."""
    for name in list(sys.modules):
        if name == "gi" or name.startswith("gi.") or name in PLUGIN_MODULES:
            del sys.modules[name]
    for path in (str(FAKES), str(PLUGIN_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)
    import gi

    assert getattr(gi, "FAKE", False), "the real gi was imported instead of the fake"
    from gi.repository import Gegl, Gimp, GLib

    spec = importlib.util.spec_from_file_location("dni_filters_entry",
                                                  PLUGIN_DIR / "dni-filters.py")
    assert spec is not None and spec.loader is not None
    entry = importlib.util.module_from_spec(spec)
    sys.modules["dni_filters_entry"] = entry
    spec.loader.exec_module(entry)
    try:
        import dni_gimp
    except ImportError:  # what the plug-in does without pyzmq is a test of its own
        dni_gimp = None

    return {"Gimp": Gimp, "Gegl": Gegl, "GLib": GLib, "entry": entry, "dni_gimp": dni_gimp}


def unload_fakes() -> None:
    for name in list(sys.modules):
        if name == "gi" or name.startswith("gi.") or name in PLUGIN_MODULES:
            del sys.modules[name]
    for path in (str(FAKES), str(PLUGIN_DIR)):
        while path in sys.path:
            sys.path.remove(path)


def write_gimp_families(root: Path) -> Path:
    """tiny, tiny3, tiny-x2, identity (conftest), blur-test and tiny-x4."""
    make_families(root)
    sys.path.insert(0, str(TESTS / "e2e_gimp"))
    try:
        from blur_family import write_blur_family
    finally:
        sys.path.remove(str(TESTS / "e2e_gimp"))
    write_blur_family(root)
    torch.manual_seed(11)
    write_family(root, "tiny-x4", correlated_states(TINY_X4, 2, seed=11), options=TINY_X4,
                 scale=4, task="super-resolve")
    return root


def noisy(height: int, width: int, seed: int = 0, sigma: float = 25.0) -> np.ndarray:
    """An opaque RGBA u8 image: a smooth gradient plus Gaussian noise, as floats 0..1."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([60 + 120 * xx / max(1, width - 1), 90 + 60 * yy / max(1, height - 1),
                     np.full_like(xx, 140.0)], axis=-1)
    rgb = np.clip(np.rint(base + rng.normal(0, sigma, base.shape)), 0, 255)
    out = np.ones((height, width, 4), np.float32)
    out[..., :3] = rgb / 255.0
    return out


def new_image(fakes: dict[str, Any], pixels: np.ndarray) -> tuple[Any, Any]:
    Gimp = fakes["Gimp"]
    height, width = pixels.shape[:2]
    image = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
    layer = Gimp.Layer.new(image, "photo", width, height, Gimp.ImageType.RGBA_IMAGE, 100.0,
                           Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.buffer.data = pixels.copy()
    return image, layer


def as_u8(data: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(data * 255.0), 0, 255).astype(np.uint8)
