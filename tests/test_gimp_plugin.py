"""The GIMP plug-in against a fake libgimp (tests/fakes_gimp) and a real `dni serve`.

The fake holds real pixels and models what GIMP does with them (merge_shadow through the
selection, undo groups, image scaling); the backend is the real server on loopback, so
every pixel the plug-in writes is compared with what the engine computes for the same
request.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

_FAKES = str(Path(__file__).resolve().parent / "fakes_gimp")
sys.path.insert(0, _FAKES)  # only to import the test kit; the fake gi stays out of the way
try:
    from gimp_testkit import as_u8, load_fakes, new_image, noisy, unload_fakes, write_gimp_families
finally:
    sys.path.remove(_FAKES)
from test_server_util import Process, serve  # noqa: E402

from dni_client import ZmqClient  # noqa: E402
from dni_client.client import Client, Event  # noqa: E402


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Any]]:
    loaded = load_fakes()
    yield loaded
    unload_fakes()


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gimp_families(tmp_path_factory.mktemp("gimp-families"))


@pytest.fixture(scope="module")
def server(families: Path) -> Iterator[Process]:
    with serve(families) as process:
        yield process


@pytest.fixture
def profile(fakes: dict[str, Any], tmp_path: Path, server: Process,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh GIMP profile folder; the plug-in talks to the test server."""
    fakes["Gimp"].reset(str(tmp_path))
    monkeypatch.setenv("DNI_GIMP_ENDPOINT", server.endpoint)
    return tmp_path


@pytest.fixture
def client(server: Process) -> Iterator[ZmqClient]:
    with ZmqClient(server.endpoint, timeout=30.0) as c:
        yield c


def run(fakes: dict[str, Any], name: str, image: Any, drawables: list[Any],
        **args: Any) -> Any:
    """Call the plug-in's run function the way GIMP does for a script (non-interactive)."""
    Gimp = fakes["Gimp"]
    plugin = fakes["entry"].DniFilters()
    procedure = plugin.do_create_procedure(name)
    config = procedure.create_config()
    for key, value in args.items():
        config.set_property(key.replace("_", "-"), value)
    return fakes["entry"].run_filter(procedure, Gimp.RunMode.NONINTERACTIVE, image,
                                     drawables, config, None)


def status(fakes: dict[str, Any], result: Any) -> Any:
    return result.index(0)


def error_text(result: Any) -> str:
    assert result.length() == 2, "an error result carries a GLib.Error"
    return str(result.index(1).message)


def expected(client: ZmqClient, pixels: np.ndarray, crop: tuple[int, int, int, int],
             family: str, scale: int = 1, **kwargs: Any) -> np.ndarray:
    """What the engine computes for `crop` (x, y, w, h) of an RGBA float image, as u8."""
    x, y, w, h = crop
    data = as_u8(pixels[y:y + h, x:x + w]).tobytes()
    result = client.run(family, w, h, "rgba8", data, **kwargs)
    assert (result.width, result.height) == (w * scale, h * scale)
    return np.frombuffer(result.pixels, np.uint8).reshape(h * scale, w * scale, 4)


def padded(core: tuple[int, int, int, int], width: int, height: int,
           pad: int = 32) -> tuple[int, int, int, int]:
    x, y, w, h = core
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(width, x + w + pad), min(height, y + h + pad)
    return x0, y0, x1 - x0, y1 - y0


# -- registration --------------------------------------------------------------------------

def test_one_procedure_per_filter_in_the_right_menus(fakes: dict[str, Any]) -> None:
    Gimp = fakes["Gimp"]
    plugin = fakes["entry"].DniFilters()
    names = plugin.do_query_procedures()
    assert names.pop() == "plug-in-dni-get-families"  # not a filter: tested with its dialog
    assert names == ["plug-in-dni-denoise", "plug-in-dni-dejpeg", "plug-in-dni-super-resolve",
                     "plug-in-dni-stylize", "plug-in-dni-other"]
    menus = {}
    for name in names:
        proc = plugin.do_create_procedure(name)
        assert proc.proc_type == Gimp.PDBProcType.PLUGIN
        assert proc.meta["image_types"] == "RGB*, GRAY*"
        menus[name] = (proc.meta["menu_paths"], proc.meta["menu_label"])
        args = proc.args
        assert list(args) == ["family", "strength", "weights", "preset", "pixel-blend",
                              "auto-map"]
        assert (args["strength"].low, args["strength"].high, args["strength"].default) == (
            0.0, 1.0, 0.5)
    assert menus == {
        "plug-in-dni-denoise": (["<Image>/Filters/Enhance"], "DNI Denoise..."),
        "plug-in-dni-dejpeg": (["<Image>/Filters/Enhance"], "DNI Remove JPEG Artefacts..."),
        "plug-in-dni-super-resolve": (["<Image>/Filters/Enhance"], "DNI Super-Resolve..."),
        "plug-in-dni-stylize": (["<Image>/Filters/Artistic"], "DNI Stylize..."),
        "plug-in-dni-other": (["<Image>/Filters/Generic"], "DNI Other Family..."),
    }


def test_entry_point_hands_the_plugin_class_to_gimp_main(fakes: dict[str, Any]) -> None:
    import runpy

    Gimp = fakes["Gimp"]
    before = len(Gimp.MAIN_CALLS)
    runpy.run_path(str(Path(fakes["entry"].__file__)), run_name="__main__")
    assert len(Gimp.MAIN_CALLS) == before + 1
    gtype, _argv = Gimp.MAIN_CALLS[-1]
    assert gtype.__name__ == "DniFilters" and issubclass(gtype, Gimp.PlugIn)


# -- pixels --------------------------------------------------------------------------------

def test_denoise_writes_the_engine_result_inside_the_selection_only(
        fakes: dict[str, Any], profile: Path, client: ZmqClient) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(60, 80, seed=1)
    image, layer = new_image(fakes, original)
    core = (20, 15, 30, 20)
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *core)

    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny", strength=0.3)

    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS
    after = as_u8(layer.buffer.data)
    before = as_u8(original)
    x, y, w, h = core
    outside = np.ones(after.shape[:2], bool)
    outside[y:y + h, x:x + w] = False
    assert np.array_equal(after[outside], before[outside]), "pixels outside the selection"
    crop = padded(core, 80, 60)
    want = expected(client, original, crop, "tiny", strength=0.3)
    inside = want[y - crop[1]:y - crop[1] + h, x - crop[0]:x - crop[0] + w]
    assert np.array_equal(after[y:y + h, x:x + w], inside)
    assert (after[y:y + h, x:x + w] != before[y:y + h, x:x + w]).any(axis=-1).mean() > 0.5
    # The padding was read for context but not written back.
    assert layer.shadow is not None and layer.shadow.writes == [
        (x, y, w, h, "R'G'B'A u8")]


def test_blur_family_lowers_noise_inside_and_undo_restores(
        fakes: dict[str, Any], profile: Path) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(64, 64, seed=2, sigma=20.0)
    image, layer = new_image(fakes, original)
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 16, 16, 32, 32)

    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="blur-test",
                 preset="Full")

    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS
    after = as_u8(layer.buffer.data).astype(float)
    before = as_u8(original).astype(float)
    # Noise: the difference from a neighbour (the gradient is smooth, the noise is not).
    def noise(a: np.ndarray) -> float:
        return float(np.diff(a[18:46, 18:46, 0], axis=1).std())

    assert noise(after) < noise(before) / 2
    assert np.array_equal(after[:16], before[:16]) and np.array_equal(after[48:], before[48:])

    assert image.undo_group_balanced() and image.groups_opened == 1
    assert len(image.undo_stack) == 1, "one run = one undo step"
    image.undo()
    assert np.array_equal(layer.buffer.data, original)


def test_no_selection_filters_the_whole_layer(fakes: dict[str, Any], profile: Path,
                                              client: ZmqClient) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(40, 50, seed=3)
    image, layer = new_image(fakes, original)
    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny", strength=1.0)
    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS
    want = expected(client, original, (0, 0, 50, 40), "tiny", strength=1.0)
    assert np.array_equal(as_u8(layer.buffer.data), want)


def test_feathered_selection_blends_through_merge_shadow(fakes: dict[str, Any],
                                                         profile: Path,
                                                         client: ZmqClient) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(32, 32, seed=4)
    image, layer = new_image(fakes, original)
    image.selection.data[8:24, 8:24] = 0.5  # a half-selected square
    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny", strength=1.0)
    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS
    full = expected(client, original, (0, 0, 32, 32), "tiny", strength=1.0)
    got = layer.buffer.data[8:24, 8:24]
    want = (original[8:24, 8:24] + full[8:24, 8:24] / 255.0) / 2
    assert np.allclose(got, want, atol=1e-6)


def test_weights_and_presets_reach_the_engine(fakes: dict[str, Any], profile: Path,
                                              client: ZmqClient) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(24, 24, seed=5)
    image, layer = new_image(fakes, original)
    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny3",
                 weights="0.2, 0.5, 0.3")
    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS
    want = expected(client, original, (0, 0, 24, 24), "tiny3", weights=[0.2, 0.5, 0.3])
    assert np.array_equal(as_u8(layer.buffer.data), want)

    image, layer = new_image(fakes, original)
    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny", preset="Half",
                 strength=0.9)
    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS
    assert np.array_equal(as_u8(layer.buffer.data),
                          expected(client, original, (0, 0, 24, 24), "tiny", strength=0.5))


def test_user_presets_from_the_gimp_profile(fakes: dict[str, Any], profile: Path,
                                            client: ZmqClient) -> None:
    Gimp = fakes["Gimp"]
    (profile / "dni").mkdir()
    (profile / "dni" / "presets.json").write_text(json.dumps({"version": 1, "families": {
        "tiny3": [{"name": "Mine", "weights": [0.6, 0.0, 0.4]}]}}))
    original = noisy(20, 20, seed=6)
    image, layer = new_image(fakes, original)
    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny3", preset="Mine")
    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS
    assert np.array_equal(as_u8(layer.buffer.data),
                          expected(client, original, (0, 0, 20, 20), "tiny3",
                                   weights=[0.6, 0.0, 0.4]))


@pytest.mark.parametrize("precision, babl, layout, dtype, tolerance", [
    ("U16_LINEAR", "R'G'B'A u16", "rgba16", "<u2", 1 / 65535),
    ("HALF_NON_LINEAR", "R'G'B'A half", "rgba16f", "<f2", 1e-3),
    ("FLOAT_LINEAR", "R'G'B'A float", "rgba32f", "<f4", 1e-6),
    ("DOUBLE_LINEAR", "R'G'B'A float", "rgba32f", "<f4", 1e-6),
    ("U32_LINEAR", "R'G'B'A float", "rgba32f", "<f4", 1e-6),
])
def test_high_bit_depths_keep_their_precision(fakes: dict[str, Any], profile: Path,
                                              client: ZmqClient, precision: str, babl: str,
                                              layout: str, dtype: str,
                                              tolerance: float) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(16, 16, seed=7)
    original[..., :3] += 0.0007  # values between 8-bit steps must survive
    image, layer = new_image(fakes, original)
    image.precision = getattr(Gimp.Precision, precision)
    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny", strength=0.5)
    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS
    assert layer.shadow is not None and layer.shadow.writes[-1][-1] == babl
    sent = original.astype(np.float64)
    if dtype == "<u2":
        wire = np.rint(sent * 65535).astype("<u2")
    else:
        wire = sent.astype(dtype)
    direct = client.run("tiny", 16, 16, layout, wire.tobytes(), strength=0.5)
    want = np.frombuffer(direct.pixels, dtype).reshape(16, 16, 4).astype(np.float64)
    if dtype == "<u2":
        want = want / 65535
    assert np.allclose(layer.buffer.data, want, atol=tolerance)
    # Not rounded to 8 bits on the way.
    assert not np.allclose(layer.buffer.data * 255, np.rint(layer.buffer.data * 255),
                           atol=1e-3)


# -- super-resolution ----------------------------------------------------------------------

def test_super_resolve_scales_the_image_x4_in_one_undo_step(
        fakes: dict[str, Any], profile: Path, client: ZmqClient) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(20, 24, seed=8)
    image, layer = new_image(fakes, original)
    result = run(fakes, "plug-in-dni-super-resolve", image, [layer], family="tiny-x4",
                 strength=0.5)
    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS
    assert (image.get_width(), image.get_height()) == (96, 80)
    assert (layer.get_width(), layer.get_height()) == (96, 80)
    assert image.scaled_with == [Gimp.InterpolationType.CUBIC]
    want = expected(client, original, (0, 0, 24, 20), "tiny-x4", scale=4, strength=0.5)
    assert np.array_equal(as_u8(layer.buffer.data), want)
    assert layer.updates[-1] == (0, 0, 96, 80)
    assert len(image.undo_stack) == 1 and image.undo_group_balanced()
    image.undo()
    assert (image.get_width(), image.get_height()) == (24, 20)
    assert np.array_equal(layer.buffer.data, original)
    log = fakes["Gimp"].LOG
    assert log.count(("context_push",)) == log.count(("context_pop",)) == 1


def test_super_resolve_of_a_selection(fakes: dict[str, Any], profile: Path,
                                      client: ZmqClient) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(40, 40, seed=9)
    image, layer = new_image(fakes, original)
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 10, 12, 8, 6)
    result = run(fakes, "plug-in-dni-super-resolve", image, [layer], family="tiny-x4")
    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS
    after = as_u8(layer.buffer.data)
    assert after.shape == (160, 160, 4)
    crop = padded((10, 12, 8, 6), 40, 40)
    want = expected(client, original, crop, "tiny-x4", scale=4, strength=0.5)
    full = np.zeros_like(after)
    full[crop[1] * 4:(crop[1] + crop[3]) * 4, crop[0] * 4:(crop[0] + crop[2]) * 4] = want
    sel = image.selection.data
    # Fully selected: the network's pixels; the enlarged selection's soft edge: a blend
    # of the network's pixels and the enlarged original; never empty shadow pixels.
    assert np.array_equal(after[sel == 1.0], full[sel == 1.0])
    assert (sel == 1.0).sum() >= (32 - 4) * (24 - 4)
    assert (after[..., 3] == 255).all(), "blended with pixels the plug-in never wrote"
    edge = (sel > 0) & (sel < 1)
    assert edge.any()
    enlarged = np.repeat(np.repeat(as_u8(original), 4, 0), 4, 1).astype(int)
    low = np.minimum(enlarged, full.astype(int))[edge] - 1
    high = np.maximum(enlarged, full.astype(int))[edge] + 1
    assert ((after[edge] >= low) & (after[edge] <= high)).all()
    assert np.array_equal(after[sel == 0], enlarged[sel == 0].astype(np.uint8))


# -- progress, errors, cancel --------------------------------------------------------------

def test_progress_goes_to_gimps_progress_bar(fakes: dict[str, Any], profile: Path) -> None:
    Gimp = fakes["Gimp"]
    image, layer = new_image(fakes, noisy(32, 32, seed=10))
    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny")
    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS
    kinds = [entry[0] for entry in Gimp.LOG]
    assert kinds[0] == "progress_init"
    updates = [entry[1] for entry in Gimp.LOG if entry[0] == "progress_update"]
    assert updates and max(updates) > 0.0
    texts = [entry[1] for entry in Gimp.LOG if entry[0] == "progress_set_text"]
    assert any(t.startswith("DNI Tiny:") for t in texts)
    assert kinds.index("displays_flush") < len(kinds) - 1
    assert kinds[-1] == "progress_end" and kinds.count("progress_end") == 1


@pytest.mark.parametrize("args, words", [
    ({"family": "nope"}, ["no family named 'nope'", "tiny3"]),
    ({"family": "tiny3", "weights": "0.5, 0.6, 0.1"}, ["sum to 1"]),
    ({"family": "tiny3", "weights": "0.5, 0.5"}, ["3 members", "give 3 weights"]),
    ({"family": "tiny3", "weights": "a, b, c"}, ["numbers separated by commas"]),
    ({"family": "tiny", "preset": "Loud"}, ["no preset named 'Loud'", "Half"]),
])
def test_bad_arguments_are_reported_and_change_nothing(
        fakes: dict[str, Any], profile: Path, args: dict[str, Any], words: list[str]) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(16, 16)
    image, layer = new_image(fakes, original)
    result = run(fakes, "plug-in-dni-denoise", image, [layer], **args)
    assert status(fakes, result) == Gimp.PDBStatusType.CALLING_ERROR
    message = error_text(result)
    for word in words:
        assert word in message
    assert np.array_equal(layer.buffer.data, original)
    assert image.undo_stack == [] and image.groups_opened == 0


def test_unusable_targets_are_explained(fakes: dict[str, Any], profile: Path) -> None:
    Gimp = fakes["Gimp"]
    image, layer = new_image(fakes, noisy(16, 16))
    second = Gimp.Layer.new(image, "other", 16, 16, Gimp.ImageType.RGBA_IMAGE, 100.0,
                            Gimp.LayerMode.NORMAL)
    group = Gimp.GroupLayer(image, "group", 16, 16)
    mask = Gimp.Channel(image, "mask", 16, 16)
    cases = [([layer, second], "one layer at a time"), ([group], "layer group"),
             ([mask], "mask or channel")]
    for drawables, words in cases:
        result = run(fakes, "plug-in-dni-denoise", image, drawables, family="tiny")
        assert status(fakes, result) == Gimp.PDBStatusType.CALLING_ERROR
        assert words in error_text(result)
    image.base_type = Gimp.ImageBaseType.INDEXED
    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny")
    assert "indexed" in error_text(result)
    assert not image.is_dirty()


def test_selection_that_misses_the_layer(fakes: dict[str, Any], profile: Path) -> None:
    Gimp = fakes["Gimp"]
    image, layer = new_image(fakes, noisy(32, 32))
    small = Gimp.Layer.new(image, "small", 8, 8, Gimp.ImageType.RGBA_IMAGE, 100.0,
                           Gimp.LayerMode.NORMAL)
    image.insert_layer(small, None, 0)
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 20, 20, 8, 8)
    result = run(fakes, "plug-in-dni-denoise", image, [small], family="tiny")
    assert status(fakes, result) == Gimp.PDBStatusType.EXECUTION_ERROR
    assert "does not touch this layer" in error_text(result)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_get_families_has_its_menu_entry_and_explains_a_missing_backend(
        fakes: dict[str, Any], profile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Filters ▸ Generic ▸ Get more DNI families… (the dialog itself is tested in
    test_get_editors.py); with no backend it fails with the plain-words reason."""
    Gimp = fakes["Gimp"]
    plugin = fakes["entry"].DniFilters()
    procedure = plugin.do_create_procedure("plug-in-dni-get-families")
    assert procedure.meta["menu_paths"] == ["<Image>/Filters/Generic"]
    assert procedure.meta["menu_label"] == "Get more DNI families..."
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("DNI_GIMP_ENDPOINT", endpoint)
    (profile / "dni").mkdir()
    (profile / "dni" / "settings.json").write_text(json.dumps({"autostart": False}))
    result = fakes["entry"].run_get_families(procedure, Gimp.RunMode.INTERACTIVE, None, [],
                                             procedure.create_config(), None)
    assert status(fakes, result) == Gimp.PDBStatusType.EXECUTION_ERROR
    assert f"Nothing answers at {endpoint}" in error_text(result)


def test_no_backend_and_no_autostart(fakes: dict[str, Any], profile: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    Gimp = fakes["Gimp"]
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("DNI_GIMP_ENDPOINT", endpoint)
    (profile / "dni").mkdir()
    (profile / "dni" / "settings.json").write_text(json.dumps({"autostart": False}))
    original = noisy(16, 16)
    image, layer = new_image(fakes, original)
    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny")
    assert status(fakes, result) == Gimp.PDBStatusType.EXECUTION_ERROR
    assert f"Nothing answers at {endpoint}" in error_text(result)
    assert "starting the backend is switched off" in error_text(result)
    assert np.array_equal(layer.buffer.data, original)
    assert Gimp.LOG[-1] == ("progress_end",)


def test_backend_is_started_and_outlives_the_plugin(fakes: dict[str, Any], profile: Path,
                                                    families: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    Gimp = fakes["Gimp"]
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("DNI_GIMP_ENDPOINT", endpoint)
    (profile / "dni").mkdir()
    (profile / "dni" / "settings.json").write_text(json.dumps({
        "command": [sys.executable, "-m", "dni.server"], "family_paths": [str(families)]}))
    original = noisy(16, 16)
    image, layer = new_image(fakes, original)
    pid_file = profile / "dni" / "backend.pid"
    try:
        result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny")
        assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS, error_text(result)
        assert not np.array_equal(layer.buffer.data, original)
        assert ("progress_pulse",) in Gimp.LOG
        pid = int(pid_file.read_text())
        os.kill(pid, 0)  # still running after the plug-in returned
    finally:
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                try:
                    os.waitpid(pid, os.WNOHANG)
                    os.kill(pid, 0)
                except (ChildProcessError, ProcessLookupError):
                    break
                time.sleep(0.1)


def test_backend_that_fails_to_start_is_explained(fakes: dict[str, Any], profile: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    Gimp = fakes["Gimp"]
    monkeypatch.setenv("DNI_GIMP_ENDPOINT", f"tcp://127.0.0.1:{_free_port()}")
    (profile / "dni").mkdir()
    (profile / "dni" / "settings.json").write_text(json.dumps({
        "command": [sys.executable, "-c", "import no_such_module_for_dni"]}))
    image, layer = new_image(fakes, noisy(8, 8))
    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny")
    assert status(fakes, result) == Gimp.PDBStatusType.EXECUTION_ERROR
    assert "missing a package" in error_text(result)
    assert "no_such_module_for_dni" in error_text(result)


def test_cancel_leaves_the_image_untouched(fakes: dict[str, Any], profile: Path,
                                          client: ZmqClient) -> None:
    dni_gimp = fakes["dni_gimp"]
    from dni_client.errors import FilterError
    from dni_client.job import Amount

    original = noisy(512, 512, seed=12)
    image, layer = new_image(fakes, original)
    session = dni_gimp.new_session(dni_gimp.load_settings())
    dni_gimp.connect(session)
    asked = []

    def should_cancel() -> bool:
        asked.append(True)
        return True

    with pytest.raises(FilterError, match="Cancelled") as info:
        dni_gimp.apply(image, [layer], session, session.family("tiny"), Amount(0.5, None),
                       tile=64, should_cancel=should_cancel)
    session.shutdown()
    assert info.value.code == "cancelled"
    assert asked
    assert np.array_equal(layer.buffer.data, original)
    assert image.undo_stack == [] and image.groups_opened == 0


# -- interactive runs ----------------------------------------------------------------------

def run_interactive(fakes: dict[str, Any], image: Any, layer: Any, answer: Any,
                    monkeypatch: pytest.MonkeyPatch, run_mode: str = "INTERACTIVE",
                    **args: Any) -> tuple[Any, list[Any]]:
    """Run with a stand-in dialog module: `answer(config)` plays the user."""
    import types

    Gimp = fakes["Gimp"]
    seen: list[Any] = []
    stub = types.ModuleType("dni_gimp_dialog")

    def run_dialog(config: Any, entry: Any, families: Any, settings: Any,
                   estimate: Any = None) -> bool:
        seen.append((entry.task, [f.name for f in families]))
        assert ("progress_end",) in Gimp.LOG, "the progress bar must not sit under a dialog"
        return bool(answer(config))

    stub.run_dialog = run_dialog  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dni_gimp_dialog", stub)
    plugin = fakes["entry"].DniFilters()
    procedure = plugin.do_create_procedure("plug-in-dni-denoise")
    config = procedure.create_config()
    for key, value in args.items():
        config.set_property(key, value)
    result = fakes["entry"].run_filter(procedure, getattr(Gimp.RunMode, run_mode), image,
                                       [layer], config, None)
    return result, seen


def test_dialog_cancel_changes_nothing(fakes: dict[str, Any], profile: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(16, 16)
    image, layer = new_image(fakes, original)
    result, seen = run_interactive(fakes, image, layer, lambda config: None, monkeypatch)
    assert status(fakes, result) == Gimp.PDBStatusType.CANCEL
    assert seen and seen[0][0] == "denoise" and "tiny3" in seen[0][1]
    assert np.array_equal(layer.buffer.data, original) and image.groups_opened == 0


def test_dialog_values_are_what_runs(fakes: dict[str, Any], profile: Path, client: ZmqClient,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(16, 16, seed=13)
    image, layer = new_image(fakes, original)

    def user(config: Any) -> bool:
        config.set_property("family", "tiny3")
        config.set_property("weights", "0.1, 0.1, 0.8")
        return True

    result, _ = run_interactive(fakes, image, layer, user, monkeypatch)
    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS
    assert np.array_equal(as_u8(layer.buffer.data),
                          expected(client, original, (0, 0, 16, 16), "tiny3",
                                   weights=[0.1, 0.1, 0.8]))


def test_repeat_uses_the_last_values_without_a_dialog(fakes: dict[str, Any], profile: Path,
                                                      client: ZmqClient,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(16, 16, seed=14)
    image, layer = new_image(fakes, original)

    def no_dialog(config: Any) -> bool:
        raise AssertionError("Filters ▸ Repeat must not open the dialog")

    result, seen = run_interactive(fakes, image, layer, no_dialog, monkeypatch,
                                   run_mode="WITH_LAST_VALS", family="tiny", strength=0.8)
    assert status(fakes, result) == Gimp.PDBStatusType.SUCCESS and not seen
    assert np.array_equal(as_u8(layer.buffer.data),
                          expected(client, original, (0, 0, 16, 16), "tiny", strength=0.8))


def test_unexpected_failures_become_a_message(fakes: dict[str, Any], profile: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    Gimp = fakes["Gimp"]
    original = noisy(16, 16)
    image, layer = new_image(fakes, original)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("surprise")

    monkeypatch.setattr(fakes["dni_gimp"], "apply", broken)
    result = run(fakes, "plug-in-dni-denoise", image, [layer], family="tiny")
    assert status(fakes, result) == Gimp.PDBStatusType.EXECUTION_ERROR
    assert "RuntimeError: surprise" in error_text(result)
    assert Gimp.LOG[-1] == ("progress_end",)
    assert np.array_equal(layer.buffer.data, original)


_CHILD = """
import sys
sys.path[:0] = [{tests!r}, {fakes!r}]
from gimp_testkit import load_fakes, new_image, noisy
from dni_client.job import Amount
from dni_client.session import Session
from dni_client.settings import BackendSettings
fakes = load_fakes()
image, layer = new_image(fakes, noisy(512, 512))
session = Session(BackendSettings("/nonexistent", endpoint={endpoint!r}), installer="-")
session.wait_connected(timeout=30)

def report():
    print("PROGRESS", flush=True)
    return False

fakes["dni_gimp"].apply(image, [layer], session, session.family("tiny"), Amount(0.5, None),
                        tile=32, should_cancel=report)
print("FINISHED", flush=True)
"""


def test_killed_plugin_is_dropped_by_the_backend(server: Process, client: ZmqClient) -> None:
    """GIMP cancels a plug-in by ending its process (progress bar ▸ Cancel): the backend
    must notice and stop the job, not compute it for nobody."""
    import subprocess

    tests = str(Path(__file__).resolve().parent)
    code = _CHILD.format(tests=tests, fakes=str(Path(tests) / "fakes_gimp"),
                         endpoint=server.endpoint)
    before = client.stats()["counters"]
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "PROGRESS", line + child.stderr.read()
        child.kill()  # what gimp_plug_in_close(plug_in, TRUE) does
        child.wait(timeout=30)
        deadline = time.monotonic() + 30
        while True:
            stats = client.stats()
            after = stats["counters"]
            if after["vanished_dropped"] > before["vanished_dropped"] and not stats["running"]:
                break
            assert time.monotonic() < deadline, f"the backend kept the job: {stats}"
            time.sleep(0.2)
        assert after["cancelled"] == before["cancelled"] + 1
        assert after["completed"] == before["completed"]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


class _FailingClient(Client):
    """A typed fake client whose job reports progress, then ends as a backend failure
    does."""

    code = "error"

    def __init__(self, endpoint: str, **options: Any) -> None:
        self.endpoint, self.timeout = endpoint, 30.0

    def hello(self) -> dict[str, Any]:
        return {"protocol": 1}

    def families(self) -> list[dict[str, Any]]:
        return [{"name": "tiny", "title": "Tiny", "scale": 1,
                 "members": [{"label": "a", "position": 0}, {"label": "b", "position": 1}]}]

    def submit(self, *args: Any, **kwargs: Any) -> str:
        return "job1"

    def poll(self, timeout_ms: int = 0) -> list[Event]:
        return [Event("progress", "job1", {"fraction": 0.25, "stage": "inference"}),
                Event("error", "job1", {"code": self.code,
                                        "message": "the members cannot be blended"})]

    def cancel(self, job_id: str) -> None:
        pass

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the plug-in goes through Session.run")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("code, words", [
    ("connection_lost", "stopped answering"),
    ("out_of_memory", "ran out of memory"),
    ("busy", "busy with other jobs"),
    ("incompatible", "refused the job: the members cannot be blended. The image was not "
                     "changed."),
])
def test_backend_failures_are_explained_and_change_nothing(fakes: dict[str, Any],
                                                           profile: Path, code: str,
                                                           words: str,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from dni_client import launcher
    from dni_client.errors import FilterError
    from dni_client.job import Amount
    from dni_client.session import Session

    dni_gimp = fakes["dni_gimp"]
    original = noisy(16, 16)
    image, layer = new_image(fakes, original)
    monkeypatch.setattr(launcher, "port_open", lambda *a, **k: True)
    monkeypatch.setattr(_FailingClient, "code", code)
    session = Session(dni_gimp.load_settings(), installer="-", client_factory=_FailingClient)
    session.wait_connected(timeout=5)
    progress = dni_gimp.Progress("test")
    with pytest.raises(FilterError, match=re.escape(words)):
        dni_gimp.apply(image, [layer], session, session.family("tiny"), Amount(0.5, None),
                       progress=progress)
    assert progress.fraction == 0.25
    assert np.array_equal(layer.buffer.data, original)
    assert image.groups_opened == 0 and image.undo_stack == []


_NO_ZMQ = """
import sys
sys.modules["zmq"] = None  # as in a GIMP whose Python has no pyzmq
sys.path[:0] = [{tests!r}, {fakes!r}]
from gimp_testkit import load_fakes, new_image, noisy
fakes = load_fakes()
Gimp = fakes["Gimp"]
plugin = fakes["entry"].DniFilters()
names = plugin.do_query_procedures()
procedure = plugin.do_create_procedure("plug-in-dni-stylize")
image, layer = new_image(fakes, noisy(8, 8))
result = fakes["entry"].run_filter(procedure, Gimp.RunMode.NONINTERACTIVE, image, [layer],
                                   procedure.create_config(), None)
print(len(names), procedure.meta["menu_paths"][0])
print(result.index(0).name)
print(result.index(1).message)
"""


def test_menus_survive_a_missing_pyzmq_and_say_what_to_do() -> None:
    import subprocess

    tests = str(Path(__file__).resolve().parent)
    code = _NO_ZMQ.format(tests=tests, fakes=str(Path(tests) / "fakes_gimp"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    count, status_name, message = done.stdout.strip().split("\n", 2)
    from dni_client.filters import FILTERS

    # every filter registered, and Get more DNI families…
    assert count == f"{len(FILTERS) + 1} <Image>/Filters/Artistic"
    assert status_name == "EXECUTION_ERROR"
    assert "could not load pyzmq" in message and "install_gimp_plugin.py" in message


def test_no_backend_offers_the_install_only_when_interactive(
        fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing answers and nothing is installed: an interactive run offers to install the
    backend (dni_gimp_install) and connects again once it is; scripts just get the error."""
    import dni_gimp
    import dni_gimp_install

    from dni_client.errors import FilterError

    entry = fakes["entry"]
    calls: list[str] = []

    def connect(session: Any, progress: Any) -> None:
        calls.append("connect")
        if calls.count("connect") == 1:
            raise FilterError("Nothing answers at tcp://127.0.0.1:1")

    class Settings:
        config_dir = "/tmp/dni-gimp-test"

    monkeypatch.setattr(dni_gimp, "connect", connect)
    for answer, interactive in ((True, True), (False, True), (True, False)):
        calls.clear()
        monkeypatch.setattr(dni_gimp_install, "offer_install",
                            lambda *a, answer=answer: calls.append("offer") or answer)
        if answer and interactive:
            entry._connect_or_offer_install(object(), Settings(), None, interactive)
            assert calls == ["connect", "offer", "connect"]
        else:
            with pytest.raises(FilterError, match="Nothing answers"):
                entry._connect_or_offer_install(object(), Settings(), None, interactive)
            assert calls == (["connect", "offer"] if interactive else ["connect"])
