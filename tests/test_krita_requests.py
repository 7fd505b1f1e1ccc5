"""dni_client.requests and dni_client.presets: the host-agnostic plugin core."""

from __future__ import annotations

import json
import random
import struct

import numpy as np
import pytest

from dni.weighting import strength_to_weights
from dni_client import presets as pr
from dni_client import requests as rq
from dni_client.requests import Rect, RequestError

IMAGE = Rect(0, 0, 200, 100)


# -- rectangles and work areas -------------------------------------------------------------

def test_work_area_pads_the_selection_and_clips_to_the_image() -> None:
    area = rq.work_area(IMAGE, Rect(0, 0, 200, 100), Rect(10, 50, 30, 40), padding=16)
    assert area.core == Rect(10, 50, 30, 40)
    assert area.crop == Rect(0, 34, 56, 66)  # left and bottom edges clipped
    assert area.selected


def test_work_area_without_selection_is_the_layer_content_inside_the_image() -> None:
    area = rq.work_area(IMAGE, Rect(-50, 20, 100, 500), None)
    assert area.crop == area.core == Rect(0, 20, 50, 80) and not area.selected


@pytest.mark.parametrize("selection", [Rect(0, 0, 0, 0), Rect(300, 0, 10, 10)])
def test_empty_or_outside_selection_is_an_error(selection: Rect) -> None:
    with pytest.raises(RequestError, match="selection is empty"):
        rq.work_area(IMAGE, IMAGE, selection)


def test_empty_layer_is_an_error() -> None:
    with pytest.raises(RequestError, match="layer is empty"):
        rq.work_area(IMAGE, Rect(0, 0, 0, 0), None)


def test_preview_crop_centres_and_stays_inside() -> None:
    assert rq.preview_crop(IMAGE, 64) == Rect(68, 18, 64, 64)
    # On the selection's centre, shifted (not shrunk) at the image border.
    assert rq.preview_crop(IMAGE, 64, selection_bounds=Rect(180, 90, 20, 10)) == \
        Rect(136, 36, 64, 64)
    assert rq.preview_crop(IMAGE, 64, centre=(0, 0)) == Rect(0, 0, 64, 64)
    # Larger than the image: the whole image.
    assert rq.preview_crop(IMAGE, 512) == IMAGE


# -- formats -------------------------------------------------------------------------------

@pytest.mark.parametrize("depth,layout,bpp", [("U8", "bgra8", 4), ("U16", "bgra16", 8),
                                              ("F16", "rgba16f", 8), ("F32", "rgba32f", 16)])
def test_krita_formats_name_the_protocol_layouts(depth: str, layout: str, bpp: int) -> None:
    from dni_client import protocol

    fmt = rq.krita_format("RGBA", depth)
    assert fmt.layout == layout and fmt.bytes_per_pixel == bpp
    assert protocol.bytes_per_pixel(fmt.layout) == bpp
    assert protocol.canonical_layout(f"krita:{depth}") == layout


@pytest.mark.parametrize("fmt", list(rq.GIMP_FORMATS.values()))
def test_gimp_formats_agree_with_the_protocol(fmt: rq.PixelFormat) -> None:
    from dni_client import protocol

    channels, size, sample, order = protocol.LAYOUTS[protocol.canonical_layout(fmt.depth)]
    assert protocol.canonical_layout(fmt.depth) == fmt.layout and order == "RGBA"
    assert channels * size == fmt.bytes_per_pixel and fmt.alpha_offset == 3 * size
    assert struct.calcsize(fmt.sample) == size


@pytest.mark.parametrize("model,words", [("CMYKA", "CMYK"), ("LABA", "L\\*a\\*b"),
                                         ("GRAYA", "RGB/Alpha")])
def test_other_colour_models_say_how_to_convert(model: str, words: str) -> None:
    with pytest.raises(RequestError, match=words):
        rq.krita_format(model, "U8")


# -- masks and alpha -----------------------------------------------------------------------

def _pixels(fmt: rq.PixelFormat, count: int, seed: int = 0) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    dtype = {"B": np.uint8, "H": np.uint16, "e": np.float16, "f": np.float32}[fmt.sample]
    if fmt.sample in "BH":
        arr = rng.integers(0, np.iinfo(dtype).max + 1, (count, 4)).astype(dtype)
    else:
        arr = rng.random((count, 4)).astype(dtype)
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes(), arr


@pytest.mark.parametrize("depth", ["U8", "U16", "F16", "F32"])
def test_multiply_alpha_scales_alpha_by_the_mask_only(depth: str) -> None:
    fmt = rq.KRITA_FORMATS[depth]
    count = 300
    data, arr = _pixels(fmt, count)
    rnd = random.Random(1)
    mask = bytes([0] * 50 + [255] * 100 + [rnd.randrange(256) for _ in range(150)])
    out = np.frombuffer(rq.multiply_alpha(data, mask, fmt), arr.dtype).reshape(count, 4)
    m = np.frombuffer(mask, np.uint8).astype(np.float64) / 255.0
    a = fmt.alpha_offset // fmt.sample_bytes
    expected = arr[:, a].astype(np.float64) * m
    if fmt.sample in "BH":
        np.testing.assert_array_equal(out[:, a], np.floor(expected + 0.5).astype(arr.dtype))
    else:
        np.testing.assert_allclose(out[:, a], expected.astype(arr.dtype), rtol=1e-3)
    colour = [c for c in range(4) if c != a]
    # Unselected pixels are cleared whole; the rest keep their colour.
    sel = m > 0
    assert not out[~sel].any() and (~sel).sum() >= 50
    np.testing.assert_array_equal(out[sel][:, colour], arr[sel][:, colour])


def test_multiply_alpha_with_a_full_mask_is_the_identity() -> None:
    fmt = rq.KRITA_FORMATS["U8"]
    data, _ = _pixels(fmt, 10)
    assert rq.multiply_alpha(data, b"\xff" * 10, fmt) == data
    with pytest.raises(RequestError):
        rq.multiply_alpha(data, b"\xff" * 9, fmt)


def test_upscale_plane_is_nearest_neighbour() -> None:
    plane = bytes([1, 2, 3, 4, 5, 6])  # 3 x 2
    big = np.frombuffer(rq.upscale_plane(plane, 3, 2, 4), np.uint8).reshape(8, 12)
    expected = np.kron(np.array([[1, 2, 3], [4, 5, 6]]), np.ones((4, 4))).astype(np.uint8)
    np.testing.assert_array_equal(big, expected)


def test_invert_and_empty_checks() -> None:
    assert rq.invert_plane(bytes([0, 10, 255])) == bytes([255, 245, 0])
    assert rq.mask_is_empty(b"\x00\x00") and not rq.mask_is_empty(b"\x00\x01")
    assert rq.mask_is_full(b"\xff\xff") and not rq.mask_is_full(b"\xff\xfe")


# -- strength maps -------------------------------------------------------------------------

def test_grey_plane_from_an_opaque_grey_u8_layer_is_its_value() -> None:
    values = [0, 64, 200, 255]
    data = b"".join(bytes([v, v, v, 255]) for v in values)
    assert rq.grey_plane(data, "RGBA", "U8", 4, 1) == bytes(values)


def test_grey_plane_weighs_colour_and_alpha() -> None:
    # Pure red (B, G, R, A) half transparent: luma 0.299 * 255 * 0.5.
    data = bytes([0, 0, 255, 128, 255, 255, 255, 0])
    assert rq.grey_plane(data, "RGBA", "U8", 2, 1) == bytes([38, 0])


@pytest.mark.parametrize("depth,code,peak", [("U16", "H", 65535), ("F32", "f", 1.0),
                                             ("F16", "e", 1.0)])
def test_grey_plane_other_depths(depth: str, code: str, peak: float) -> None:
    grey = 0.6 if code != "H" else 39321  # 0.6 of full scale: 153 of 255
    data = struct.pack(f"<8{code}", grey, grey, grey, peak, peak, peak, peak, peak)
    assert rq.grey_plane(data, "RGBA", depth, 2, 1) == bytes([153, 255])


def test_grey_plane_accepts_masks_and_refuses_cmyk() -> None:
    assert rq.grey_plane(b"\x01\x02", "A", "U8", 2, 1) == b"\x01\x02"
    assert rq.grey_plane(bytes([10, 255, 20, 255]), "GRAYA", "U8", 2, 1) == bytes([10, 20])
    with pytest.raises(RequestError, match="strength map"):
        rq.grey_plane(b"\x00" * 5, "CMYKA", "U8", 1, 1)


# -- weights -------------------------------------------------------------------------------

@pytest.mark.parametrize("positions", [[0, 1], [15, 25, 50], [1, 2, 3, 10]])
def test_weights_for_strength_matches_the_engine(positions: list[float]) -> None:
    for s in np.linspace(0, 1, 23):
        ours = rq.weights_for_strength(float(s), positions)
        np.testing.assert_allclose(ours, strength_to_weights(float(s), positions), atol=1e-12)
        back = rq.strength_for_weights(ours, positions)
        assert back == pytest.approx(float(s))


def test_linked_sliders_stay_convex() -> None:
    rng = random.Random(4)
    weights: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)
    for _ in range(200):
        weights = rq.set_weight(weights, rng.randrange(3), rng.random() * 1.2 - 0.1)
        assert all(w >= 0 for w in weights) and sum(weights) == pytest.approx(1.0)
    assert rq.set_weight((1.0, 0.0, 0.0), 0, 0.4) == pytest.approx((0.4, 0.3, 0.3))
    assert rq.set_weight((0.2, 0.6, 0.2), 1, 0.0) == pytest.approx((0.5, 0.0, 0.5))
    assert rq.strength_for_weights((0.2, 0.3, 0.5), [15, 25, 50]) is None  # off the axis


def test_layer_names() -> None:
    assert rq.layer_name("Denoise", 0.404, None) == "DNI Denoise 40%"
    assert rq.layer_name("Stylize", None, (0.2, 0.3, 0.5)) == "DNI Stylize 20/30/50"
    assert rq.layer_name("Denoise", None, None, mode="pixel") == "DNI Denoise map (pixel blend)"


# -- presets -------------------------------------------------------------------------------

FAMILY = {"name": "denoise", "members": [{"label": "a", "position": 0},
                                         {"label": "b", "position": 1},
                                         {"label": "c", "position": 2}],
          "presets": [{"name": "Gentle", "strength": 0.2}, {"name": "Broken", "strength": 7}]}


def test_presets_save_rename_delete_and_persist(tmp_path) -> None:
    path = tmp_path / "cfg" / "presets.json"
    store = pr.PresetStore(path)
    assert [p.name for p in store.presets(FAMILY)] == ["Gentle"]  # the broken one skipped
    store.save("denoise", "  My   look ", strength=0.35, family=FAMILY)
    store.save("denoise", "Mix", weights=[0.2, 0.3, 0.5], members=3, family=FAMILY)
    again = pr.PresetStore(path)
    names = [(p.name, p.builtin) for p in again.presets(FAMILY)]
    assert names == [("Gentle", True), ("My look", False), ("Mix", False)]
    again.rename("denoise", "Mix", "Blend", family=FAMILY)
    again.delete("denoise", "My look", family=FAMILY)
    third = pr.PresetStore(path)
    user = third.user_presets("denoise", 3)
    assert [(p.name, p.weights) for p in user] == [("Blend", (0.2, 0.3, 0.5))]
    assert json.loads(path.read_text())["version"] == 1


def test_presets_refuse_bad_values_and_builtin_names(tmp_path) -> None:
    store = pr.PresetStore(tmp_path / "p.json")
    with pytest.raises(pr.PresetError, match="sum to 1"):
        store.save("denoise", "x", weights=[0.5, 0.6, 0.0])
    with pytest.raises(pr.PresetError, match="3 members"):
        store.save("denoise", "x", weights=[1.0], members=3)
    with pytest.raises(pr.PresetError, match="between 0 and 1"):
        store.save("denoise", "x", strength=1.5)
    with pytest.raises(pr.PresetError, match="family's presets"):
        store.save("denoise", "Gentle", strength=0.1, family=FAMILY)
    with pytest.raises(pr.PresetError, match="cannot be deleted"):
        store.delete("denoise", "Gentle", family=FAMILY)
    with pytest.raises(pr.PresetError, match="cannot be renamed"):
        store.rename("denoise", "Gentle", "Other", family=FAMILY)
    with pytest.raises(pr.PresetError, match="needs a name"):
        store.save("denoise", "   ", strength=0.1)
    assert not (tmp_path / "p.json").exists()  # nothing was written


def test_an_unreadable_presets_file_is_kept_aside(tmp_path) -> None:
    path = tmp_path / "presets.json"
    path.write_text("{not json")
    store = pr.PresetStore(path)
    assert store.problem and (tmp_path / "presets.json.broken").read_text() == "{not json"
    store.save("tiny", "a", strength=0.5)
    assert [p.name for p in pr.PresetStore(path).user_presets("tiny")] == ["a"]


# -- Krita's older Pythons ---------------------------------------------------------------

def _old_pythons() -> list[str]:
    import glob
    import shutil
    import subprocess

    found = []
    for version in ("3.8", "3.10"):
        for exe in sorted(glob.glob(f"/root/.pyenv/versions/{version}*/bin/python")) + [
                shutil.which(f"python{version}")]:
            if not exe:
                continue
            try:  # pyenv shims exist without a working interpreter behind them
                ok = subprocess.run([exe, "-c", "import sys; print(sys.version[:4])"],
                                    capture_output=True, text=True, timeout=20)
            except OSError:
                continue
            if ok.returncode == 0 and ok.stdout.startswith(version):
                found.append(exe)
                break
    return found


@pytest.mark.parametrize("python", _old_pythons() or [None])
def test_plugin_code_runs_on_older_krita_pythons(python: str | None) -> None:
    """Krita builds ship Python 3.8 and 3.10: the plugin must not use newer syntax."""
    import subprocess
    from pathlib import Path

    if python is None:
        pytest.skip("no python3.8 or python3.10 on this machine")
    root = Path(__file__).resolve().parents[1] / "plugin"
    files = [str(p) for p in (root / "krita" / "dni_krita").glob("*.py")]
    files += [str(root / "dni_client" / f) for f in ("requests.py", "presets.py",
                                                     "launcher.py", "protocol.py")]
    script = (
        "import importlib.util, sys\n"
        "for f in sys.argv[1:]: compile(open(f, encoding='utf-8').read(), f, 'exec')\n"
        "for f in [a for a in sys.argv[1:] if 'dni_client' in a]:\n"
        "    spec = importlib.util.spec_from_file_location('m', f)\n"
        "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print('ok')\n")
    out = subprocess.run([python, "-c", script, *files], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
