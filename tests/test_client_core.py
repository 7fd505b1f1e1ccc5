"""The host-agnostic plugin core: geometry, pixels, mixing, families, filters, presets,
job specs, and that it all runs on the Pythons Krita and GIMP ship."""

from __future__ import annotations

import json
import random
import struct

import numpy as np
import pytest

from dni_client import mixing
from dni_client import pixels as px
from dni_client import presets as pr
from dni_client.errors import MixError, RequestError
from dni_client.families import FamilyInfo
from dni_client.geometry import Rect, preview_crop, work_area
from dni_client.job import Amount, JobSpec

IMAGE = Rect(0, 0, 200, 100)


# -- rectangles and work areas -------------------------------------------------------------

def test_work_area_pads_the_selection_and_clips_to_the_image() -> None:
    area = work_area(IMAGE, Rect(0, 0, 200, 100), Rect(10, 50, 30, 40), padding=16)
    assert area.core == Rect(10, 50, 30, 40)
    assert area.crop == Rect(0, 34, 56, 66)  # left and bottom edges clipped
    assert area.selected


def test_work_area_without_selection_is_the_layer_content_inside_the_image() -> None:
    area = work_area(IMAGE, Rect(-50, 20, 100, 500), None)
    assert area.crop == area.core == Rect(0, 20, 50, 80) and not area.selected


@pytest.mark.parametrize("selection", [Rect(0, 0, 0, 0), Rect(300, 0, 10, 10)])
def test_empty_or_outside_selection_is_an_error(selection: Rect) -> None:
    with pytest.raises(RequestError, match="selection is empty"):
        work_area(IMAGE, IMAGE, selection)


def test_empty_layer_is_an_error() -> None:
    with pytest.raises(RequestError, match="layer is empty"):
        work_area(IMAGE, Rect(0, 0, 0, 0), None)


def test_preview_crop_centres_and_stays_inside() -> None:
    assert preview_crop(IMAGE, 64) == Rect(68, 18, 64, 64)
    # On the selection's centre, shifted (not shrunk) at the image border.
    assert preview_crop(IMAGE, 64, selection_bounds=Rect(180, 90, 20, 10)) == \
        Rect(136, 36, 64, 64)
    assert preview_crop(IMAGE, 64, centre=(0, 0)) == Rect(0, 0, 64, 64)
    # Larger than the image: the whole image.
    assert preview_crop(IMAGE, 512) == IMAGE


# -- formats -------------------------------------------------------------------------------

@pytest.mark.parametrize("depth,layout,bpp", [("U8", "bgra8", 4), ("U16", "bgra16", 8),
                                              ("F16", "rgba16f", 8), ("F32", "rgba32f", 16)])
def test_krita_formats_name_the_protocol_layouts(depth: str, layout: str, bpp: int) -> None:
    from dni_client import protocol

    fmt = px.KRITA_FORMATS[depth]
    assert fmt.layout == layout and fmt.bytes_per_pixel == bpp
    assert protocol.bytes_per_pixel(fmt.layout) == bpp
    assert protocol.canonical_layout(f"krita:{depth}") == layout


@pytest.mark.parametrize("fmt", list(px.GIMP_FORMATS.values()))
def test_gimp_formats_agree_with_the_protocol(fmt: px.PixelFormat) -> None:
    from dni_client import protocol

    channels, size, sample, order = protocol.LAYOUTS[protocol.canonical_layout(fmt.depth)]
    assert protocol.canonical_layout(fmt.depth) == fmt.layout and order == "RGBA"
    assert channels * size == fmt.bytes_per_pixel and fmt.alpha_offset == 3 * size
    assert struct.calcsize(fmt.sample) == size


# -- masks and alpha -----------------------------------------------------------------------

def _pixels(fmt: px.PixelFormat, count: int, seed: int = 0) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    dtype = {"B": np.uint8, "H": np.uint16, "e": np.float16, "f": np.float32}[fmt.sample]
    if fmt.sample in "BH":
        arr = rng.integers(0, np.iinfo(dtype).max + 1, (count, 4)).astype(dtype)
    else:
        arr = rng.random((count, 4)).astype(dtype)
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes(), arr


@pytest.mark.parametrize("depth", ["U8", "U16", "F16", "F32"])
def test_multiply_alpha_scales_alpha_by_the_mask_only(depth: str) -> None:
    fmt = px.KRITA_FORMATS[depth]
    count = 300
    data, arr = _pixels(fmt, count)
    rnd = random.Random(1)
    mask = bytes([0] * 50 + [255] * 100 + [rnd.randrange(256) for _ in range(150)])
    out = np.frombuffer(px.multiply_alpha(data, mask, fmt), arr.dtype).reshape(count, 4)
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
    fmt = px.KRITA_FORMATS["U8"]
    data, _ = _pixels(fmt, 10)
    assert px.multiply_alpha(data, b"\xff" * 10, fmt) == data
    with pytest.raises(RequestError):
        px.multiply_alpha(data, b"\xff" * 9, fmt)


def test_upscale_plane_is_nearest_neighbour() -> None:
    plane = bytes([1, 2, 3, 4, 5, 6])  # 3 x 2
    big = np.frombuffer(px.upscale_plane(plane, 3, 2, 4), np.uint8).reshape(8, 12)
    expected = np.kron(np.array([[1, 2, 3], [4, 5, 6]]), np.ones((4, 4))).astype(np.uint8)
    np.testing.assert_array_equal(big, expected)


def test_empty_and_full_checks() -> None:
    assert px.mask_is_empty(b"\x00\x00") and not px.mask_is_empty(b"\x00\x01")
    assert px.mask_is_full(b"\xff\xff") and not px.mask_is_full(b"\xff\xfe")


# -- strength maps -------------------------------------------------------------------------

def test_grey_plane_from_an_opaque_grey_u8_layer_is_its_value() -> None:
    values = [0, 64, 200, 255]
    data = b"".join(bytes([v, v, v, 255]) for v in values)
    assert px.grey_plane(data, px.KRITA_FORMATS["U8"], 4, 4) == bytes(values)


def test_grey_plane_weighs_colour_and_alpha() -> None:
    # Pure red (B, G, R, A) half transparent: luma 0.299 * 255 * 0.5.
    data = bytes([0, 0, 255, 128, 255, 255, 255, 0])
    assert px.grey_plane(data, px.KRITA_FORMATS["U8"], 4, 2) == bytes([38, 0])


@pytest.mark.parametrize("depth,code,peak", [("U16", "H", 65535), ("F32", "f", 1.0),
                                             ("F16", "e", 1.0)])
def test_grey_plane_other_depths(depth: str, code: str, peak: float) -> None:
    grey = 0.6 if code != "H" else 39321  # 0.6 of full scale: 153 of 255
    data = struct.pack(f"<8{code}", grey, grey, grey, peak, peak, peak, peak, peak)
    assert px.grey_plane(data, px.KRITA_FORMATS[depth], 4, 2) == bytes([153, 255])


def test_grey_plane_of_masks_and_grey_layers() -> None:
    assert px.grey_plane(b"\x01\x02", None, 1, 2) == b"\x01\x02"
    u8 = px.KRITA_FORMATS["U8"]
    assert px.grey_plane(bytes([10, 255, 20, 255]), u8, 2, 2) == bytes([10, 20])
    assert px.grey_plane(bytes([200, 51, 20, 0]), u8, 2, 2) == bytes([40, 0])  # alpha weighs
    with pytest.raises(RequestError, match="strength map"):
        px.grey_plane(b"\x00" * 5, u8, 4, 2)


# -- weights -------------------------------------------------------------------------------

@pytest.mark.parametrize("positions", [[0, 1], [15, 25, 50], [1, 2, 3, 10]])
def test_strength_and_weights_round_trip(positions: list[float]) -> None:
    for s in np.linspace(0, 1, 23):
        weights = mixing.strength_to_weights(float(s), positions)
        assert all(w >= 0 for w in weights) and sum(weights) == pytest.approx(1.0)
        assert sum(w > 0 for w in weights) <= 2  # two neighbours at most
        assert mixing.weights_to_strength(weights, positions) == pytest.approx(float(s))


def test_the_engine_uses_the_same_rules_with_its_own_error() -> None:
    from dni.errors import WeightsError
    from dni.weighting import strength_to_weights, validate_weights

    assert strength_to_weights(0.25, [0, 1]) == mixing.strength_to_weights(0.25, [0, 1])
    with pytest.raises(WeightsError, match="sum to 1"):
        validate_weights([0.5, 0.6], 2)


@pytest.mark.parametrize("bad, words", [([0.5, 0.6], "sum to 1"), ([1.0], "2 weights"),
                                        ([-0.5, 1.5], "negative"),
                                        ([float("nan"), 1.0], "finite"),
                                        ("0.5,0.5", "list of numbers"),
                                        ([True, 0.0], "number")])
def test_weights_are_checked_never_rescaled(bad: object, words: str) -> None:
    with pytest.raises(MixError, match=words):
        mixing.validate_weights(bad, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), float("inf"), "x", None])
def test_strength_outside_the_axis_is_refused(bad: object) -> None:
    with pytest.raises(MixError, match="strength"):
        mixing.validate_strength(bad)


def test_linked_sliders_stay_convex() -> None:
    rng = random.Random(4)
    weights: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)
    for _ in range(200):
        weights = mixing.set_weight(weights, rng.randrange(3), rng.random() * 1.2 - 0.1)
        assert all(w >= 0 for w in weights) and sum(weights) == pytest.approx(1.0)
    assert mixing.set_weight((1.0, 0.0, 0.0), 0, 0.4) == pytest.approx((0.4, 0.3, 0.3))
    assert mixing.set_weight((0.2, 0.6, 0.2), 1, 0.0) == pytest.approx((0.5, 0.0, 0.5))
    assert mixing.weights_to_strength((0.2, 0.3, 0.5), [15, 25, 50]) is None  # off the axis
    assert mixing.convex([0, 0]) == (0.5, 0.5) and mixing.convex([2, 6]) == (0.25, 0.75)


def test_presets_are_found_exactly_then_ignoring_case() -> None:
    presets = [mixing.Preset("Light", 0.2), mixing.Preset("light", 0.3)]
    assert mixing.find_preset(presets, "light").strength == 0.3
    assert mixing.find_preset(presets[:1], "LIGHT").strength == 0.2
    with pytest.raises(MixError, match="presets: Light, light"):
        mixing.find_preset(presets, "Strong")


def test_result_names() -> None:
    fam = FamilyInfo.from_dict(FAMILY)
    fmt = px.KRITA_FORMATS["U8"]

    def spec(amount: Amount, **kw: object) -> JobSpec:
        return JobSpec(fam, Rect(0, 0, 1, 1), fmt, b"\0" * 4, amount, **kw)  # type: ignore

    assert spec(Amount(0.404, None)).result_name() == "DNI Denoise 40%"
    assert spec(Amount(None, (0.2, 0.3, 0.5))).result_name() == "DNI Denoise 20/30/50"
    assert spec(Amount(0.5, None), mode="pixel", strength_map=b"\0").result_name() == \
        "DNI Denoise map (pixel blend)"


def test_job_spec_requests_and_checks_results() -> None:
    fam = FamilyInfo.from_dict(dict(FAMILY, scale=2))
    fmt = px.KRITA_FORMATS["U8"]
    spec = JobSpec(fam, Rect(5, 5, 2, 1), fmt, b"\1" * 8, Amount(None, (0.2, 0.3, 0.5)),
                   mask=b"\xff\xff")
    request = spec.request()
    assert request["weights"] == [0.2, 0.3, 0.5] and "strength" not in request
    assert (request["width"], request["height"], request["layout"]) == (2, 1, "bgra8")
    good = b"\2" * (4 * 2 * 4)
    assert spec.checked_pixels(4, 2, "krita:U8", good) == good
    for width, height, layout, data, words in ((2, 1, "bgra8", good, "scale 2"),
                                               (4, 2, "rgba8", good, "expected bgra8"),
                                               (4, 2, "nonsense", good, "expected bgra8"),
                                               (4, 2, "bgra8", good[:-1], "bytes")):
        with pytest.raises(RequestError, match=words):
            spec.checked_pixels(width, height, layout, data)


def test_filters_are_the_manifest_tasks_and_cover_every_family() -> None:
    from dni_client import filters

    assert filters.tasks()[-1] == filters.OTHER and len(set(filters.tasks())) == len(
        filters.FILTERS)
    fams = [FamilyInfo.from_dict({"name": n, "task": t}) for n, t in
            (("b", "denoise"), ("denoise", "denoise"), ("odd", "other"))]
    denoise = filters.filter_for("denoise")
    assert [f.name for f in filters.families_for(denoise, fams)] == ["b", "denoise"]
    assert filters.default_family(denoise, fams).name == "denoise"
    everything = filters.filter_for("no-such-task")
    assert everything.lists_every_family and len(filters.families_for(everything, fams)) == 3


# -- presets -------------------------------------------------------------------------------

FAMILY = {"name": "denoise", "title": "Denoise", "members": [{"label": "a", "position": 0},
                                         {"label": "b", "position": 1},
                                         {"label": "c", "position": 2}],
          "presets": [{"name": "Gentle", "strength": 0.2}, {"name": "Broken", "strength": 7}]}


def test_presets_save_rename_delete_and_persist(tmp_path) -> None:
    path = tmp_path / "cfg" / "presets.json"
    store = pr.PresetStore(path)
    fam = FamilyInfo.from_dict(FAMILY)
    assert [p.name for p in store.presets(fam)] == ["Gentle"]  # the broken one skipped
    store.save(fam, "  My   look ", strength=0.35)
    store.save(fam, "Mix", weights=[0.2, 0.3, 0.5])
    again = pr.PresetStore(path)
    names = [(p.name, p.builtin) for p in again.presets(fam)]
    assert names == [("Gentle", True), ("My look", False), ("Mix", False)]
    again.rename(fam, "Mix", "Blend")
    again.delete(fam, "My look")
    third = pr.PresetStore(path)
    user = third.user_presets(fam)
    assert [(p.name, p.weights) for p in user] == [("Blend", (0.2, 0.3, 0.5))]
    assert json.loads(path.read_text())["version"] == 1


def test_presets_refuse_bad_values_and_builtin_names(tmp_path) -> None:
    store = pr.PresetStore(tmp_path / "p.json")
    fam = FamilyInfo.from_dict(FAMILY)
    with pytest.raises(pr.PresetError, match="sum to 1"):
        store.save(fam, "x", weights=[0.5, 0.6, 0.0])
    with pytest.raises(pr.PresetError, match="3 members"):
        store.save(fam, "x", weights=[1.0])
    with pytest.raises(pr.PresetError, match="between 0 and 1"):
        store.save(fam, "x", strength=1.5)
    with pytest.raises(pr.PresetError, match="family's presets"):
        store.save(fam, "Gentle", strength=0.1)
    with pytest.raises(pr.PresetError, match="cannot be deleted"):
        store.delete(fam, "Gentle")
    with pytest.raises(pr.PresetError, match="cannot be renamed"):
        store.rename(fam, "Gentle", "Other")
    with pytest.raises(pr.PresetError, match="needs a name"):
        store.save(fam, "   ", strength=0.1)
    assert not (tmp_path / "p.json").exists()  # nothing was written


def test_an_unreadable_presets_file_is_kept_aside(tmp_path) -> None:
    path = tmp_path / "presets.json"
    path.write_text("{not json")
    store = pr.PresetStore(path)
    assert store.problem and (tmp_path / "presets.json.broken").read_text() == "{not json"
    fam = FamilyInfo.from_dict(FAMILY)
    store.save(fam, "a", strength=0.5)
    assert [p.name for p in pr.PresetStore(path).user_presets(fam)] == ["a"]


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
    files += [str(p) for p in (root / "gimp" / "dni-filters").glob("*.py")]
    # Every client module is imported (not only compiled) there, but the one that needs
    # pyzmq: what runs at import time must run on that Python too.
    modules = [p.stem for p in (root / "dni_client").glob("*.py")
               if p.stem not in ("__init__", "zmq_client")]
    script = (
        "import importlib, sys\n"
        "root, names, files = sys.argv[1], sys.argv[2].split(','), sys.argv[3:]\n"
        "for f in files: compile(open(f, encoding='utf-8').read(), f, 'exec')\n"
        "sys.path.insert(0, root)\n"
        "for name in names: importlib.import_module('dni_client.' + name)\n"
        "print('ok')\n")
    out = subprocess.run([python, "-c", script, str(root), ",".join(modules), *files],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_failing_listener_is_logged_and_the_others_still_hear(caplog) -> None:
    from dni_client.session import Signal

    heard = []

    def broken() -> None:
        raise RuntimeError("a docker bug")

    signal = Signal()
    signal.connect(broken)
    signal.connect(lambda: heard.append(1))
    signal.connect(broken)  # connecting twice is one connection
    with caplog.at_level("ERROR"):
        signal.emit()
    assert heard == [1] and caplog.text.count("a listener failed") == 1
    signal.disconnect(broken)
    signal.emit()
    assert heard == [1, 1]
