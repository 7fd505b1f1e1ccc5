"""`auto` strengths end to end: the Python API, `dni apply --strength auto` and
`--strength-map auto` here and over a real `dni serve`, the protocol's fields, the client
core behind the editors' Auto button, and the GIMP dialog's button and map against the
fake GTK. The family is the bundled denoise one (its axis measures the noise sigma); the
tiny test family stands for every family whose axis measures nothing."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import photo, run_offscreen
from PIL import Image
from test_server_util import Process, serve

import dni
from dni import auto_strength
from dni.cli import main
from dni.errors import WeightsError
from dni.server.limits import Limits
from dni.server.parsing import RequestError, RunRequest, parse_request
from dni_client import auto
from dni_client import protocol as P
from dni_client.client import Result
from dni_client.errors import RequestError as ClientRequestError
from dni_client.families import FamilyInfo
from dni_client.geometry import Rect
from dni_client.job import Amount, JobSpec
from dni_client.mixing import position_to_strength
from dni_client.pixels import KRITA_FORMATS

ROOT = Path(__file__).resolve().parents[1]
SIGMA = 30


@pytest.fixture(scope="module")
def families(tiny_family_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled denoise family (weights and manifest only) and the tiny test family."""
    root = tmp_path_factory.mktemp("auto-families")
    (root / "denoise").mkdir()
    for item in (ROOT / "models" / "denoise").iterdir():
        if item.name == "family.toml" or item.suffix == ".safetensors":
            shutil.copy(item, root / "denoise" / item.name)
    shutil.copytree(tiny_family_dir / "tiny", root / "tiny")
    return root


@pytest.fixture(scope="module")
def denoise(families: Path) -> dni.Family:
    return dni.load_family(families / "denoise", device="cpu", precision="fp32")


def noisy_photo(sigma: float | np.ndarray = SIGMA, seed: int = 0) -> np.ndarray:
    """astronaut-crop with Gaussian noise, saved as 8 bits (uint8 RGB)."""
    clean = photo().astype(np.float64)
    sigma = np.asarray(sigma, np.float64)
    noise = np.random.default_rng(seed).standard_normal(clean.shape) * \
        (sigma[..., None] if sigma.ndim == 2 else sigma)
    return np.clip(np.round(clean + noise), 0, 255).astype(np.uint8)


def varying_photo() -> np.ndarray:
    h, w = photo().shape[:2]
    return noisy_photo(np.broadcast_to(np.linspace(5, 50, w), (h, w)), seed=4)


# -- the Python API ------------------------------------------------------------------------
def test_auto_is_the_estimated_strength_at_work(denoise: dni.Family) -> None:
    image = noisy_photo()
    found = auto_strength.estimate(denoise.manifest, image)
    assert found.measures == "noise-sigma"
    assert abs(found.value - SIGMA) <= 0.1 * SIGMA
    assert found.strength == position_to_strength(found.value, denoise.manifest.positions)
    assert abs(found.strength - (SIGMA - 15) / 35) < 0.1
    by_auto = denoise.apply(image, strength="auto")
    assert np.array_equal(by_auto, denoise.apply(image, strength=found.strength))
    assert not np.array_equal(by_auto, denoise.apply(image, strength=1.0))


def test_auto_map_is_stronger_where_the_noise_is(denoise: dni.Family) -> None:
    image = varying_photo()
    found = auto_strength.estimate(denoise.manifest, image, per_region=True)
    smap = found.strength_map
    assert smap is not None and smap.shape == image.shape[:2]
    assert 0.0 <= float(smap.min()) and float(smap.max()) <= 1.0
    assert float(smap[:, :32].mean()) + 0.3 < float(smap[:, -32:].mean())
    by_auto = denoise.apply(image, strength_map="auto")
    assert np.array_equal(by_auto, denoise.apply(image, strength_map=smap))


def test_families_whose_axis_measures_nothing_refuse_auto(families: Path) -> None:
    tiny = dni.load_family(families / "tiny", device="cpu")
    image = noisy_photo()
    for amount in ({"strength": "auto"}, {"strength_map": "auto"}):
        with pytest.raises(WeightsError, match="cannot set its strength automatically: its "
                           "axis \\(test axis\\) is not something dni can measure"):
            tiny.apply(image, **amount)


def test_other_words_and_auto_with_a_strength_are_refused(denoise: dni.Family) -> None:
    image = noisy_photo()
    with pytest.raises(WeightsError, match="a number between 0 and 1 or 'auto', not 'max'"):
        denoise.apply(image, strength="max")
    with pytest.raises(WeightsError, match="give no strength or weights with it"):
        denoise.apply(image, strength=0.3, strength_map="auto")


# -- the command line, here and over a real server ------------------------------------------
def write(image: np.ndarray, path: Path) -> Path:
    Image.fromarray(image).save(path)
    return path


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal within one level: another engine instance (or process) may sum a
    convolution in another order."""
    return a.shape == b.shape and int(np.abs(a.astype(int) - b).max()) <= 1


def test_cli_strength_auto_says_what_it_found(families: Path, denoise: dni.Family,
                                               tmp_path: Path, capsys: Any) -> None:
    image = noisy_photo()
    source, out = write(image, tmp_path / "in.png"), tmp_path / "out.png"
    code = main(["apply", str(source), "-o", str(out), "--family", "denoise", "--family-path",
                 str(families), "--device", "cpu", "--strength", "auto"])
    assert code == 0
    found = auto_strength.estimate(denoise.manifest, image)
    assert f"-> strength {found.strength:.2f}" in capsys.readouterr().out
    assert close(read(out), denoise.apply(image, strength=found.strength))


def test_cli_strength_map_auto(families: Path, denoise: dni.Family, tmp_path: Path) -> None:
    image = varying_photo()
    source, out = write(image, tmp_path / "in.png"), tmp_path / "out.png"
    assert main(["apply", str(source), "-o", str(out), "--family", "denoise", "--family-path",
                 str(families), "--device", "cpu", "--strength-map", "auto"]) == 0
    assert close(read(out), denoise.apply(image, strength_map="auto"))


def test_cli_refuses_auto_for_other_families_before_the_work(families: Path, tmp_path: Path,
                                                            capsys: Any) -> None:
    source, out = write(noisy_photo(), tmp_path / "in.png"), tmp_path / "out.png"
    code = main(["apply", str(source), "-o", str(out), "--family", "tiny", "--family-path",
                 str(families), "--strength", "auto"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "family 'tiny' cannot set its strength automatically" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


@pytest.fixture(scope="module")
def server(families: Path) -> Iterator[Process]:
    with serve(families) as process:
        yield process


def test_strength_auto_over_a_real_server(server: Process, families: Path,
                                          denoise: dni.Family, tmp_path: Path,
                                          capsys: Any) -> None:
    image = noisy_photo()
    source, out = write(image, tmp_path / "in.png"), tmp_path / "out.png"
    code = main(["apply", str(source), "-o", str(out), "--family", "denoise",
                 "--server", server.endpoint, "--strength", "auto"])
    assert code == 0
    found = auto_strength.estimate(denoise.manifest, image)
    assert f"-> strength {found.strength:.2f}" in capsys.readouterr().out
    assert close(read(out), denoise.apply(image, strength=found.strength))


def test_strength_map_auto_over_a_real_server(server: Process, denoise: dni.Family,
                                              tmp_path: Path) -> None:
    image = varying_photo()
    source, out = write(image, tmp_path / "in.png"), tmp_path / "out.png"
    assert main(["apply", str(source), "-o", str(out), "--family", "denoise",
                 "--server", server.endpoint, "--strength-map", "auto"]) == 0
    assert close(read(out), denoise.apply(image, strength_map="auto"))


def test_a_server_refuses_auto_for_other_families(server: Process, tmp_path: Path,
                                                  capsys: Any) -> None:
    from dni_client import ServerError, ZmqClient

    source, out = write(noisy_photo(), tmp_path / "in.png"), tmp_path / "out.png"
    code = main(["apply", str(source), "-o", str(out), "--family", "tiny",
                 "--server", server.endpoint, "--strength", "auto"])
    assert code == 1 and "cannot set its strength automatically" in capsys.readouterr().err
    # What the server itself answers a client that asks anyway:
    with ZmqClient(server.endpoint, timeout=30.0) as client:
        with pytest.raises(ServerError) as info:
            client.run("tiny", 4, 4, "rgb8", bytes(48), strength=P.AUTO)
    assert info.value.code == "bad_weights"
    assert "cannot set its strength automatically" in info.value.message


def test_the_result_header_says_what_the_server_found(server: Process,
                                                      denoise: dni.Family) -> None:
    from dni_client import ZmqClient

    image = noisy_photo()
    h, w = image.shape[:2]
    with ZmqClient(server.endpoint, timeout=60.0) as client:
        result = client.run("denoise", w, h, "rgb8", image.tobytes(), strength=P.AUTO)
    found = auto_strength.estimate(denoise.manifest, image)
    assert result.header["auto"] == found.to_json()
    assert auto.found_strength(result) == pytest.approx(found.strength, abs=1e-4)
    assert auto.describe(result).startswith("Auto: noise sigma ")


# -- the protocol's fields ---------------------------------------------------------------------
def run_message(**changes: Any) -> list[bytes]:
    header = {"v": 1, "op": "run", "id": "job-1", "family": "denoise", "width": 3,
              "height": 2, "layout": "rgb8", **changes}
    frames = [bytes(18)]
    if "frames" in header:
        frames += [bytes(6)] * (len(header["frames"]) - 1)
    return [b"\x00client", b"", P.encode_header(header), *frames]


def test_parsing_auto_fields() -> None:
    request = parse_request(run_message(strength="auto"), Limits())
    assert isinstance(request, RunRequest)
    assert (request.auto, request.strength) == ("strength", None)
    request = parse_request(run_message(strength_map="auto"), Limits())
    assert isinstance(request, RunRequest) and request.auto == "strength_map"
    assert parse_request(run_message(strength=0.5), Limits()).auto is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("changes, words", [
    ({"strength": "auto", "strength_map": "auto"}, "cannot both be 'auto'"),
    ({"strength_map": "yes"}, "can only be 'auto'"),
    ({"strength_map": "auto", "frames": ["pixels", "strength_map"]}, "send one or the other"),
    ({"strength": "most"}, "strength"),
])
def test_parsing_refuses_bad_auto_fields(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_request(run_message(**changes), Limits())
    assert info.value.code == "bad_header" and words in info.value.message


# -- the client core behind the Auto button ------------------------------------------------------
DENOISE = {"name": "denoise", "task": "denoise", "title": "Denoise",
           "axis": {"name": "noise level", "low": "gentle", "high": "strong",
                    "measures": "noise-sigma"},
           "members": [{"label": "sigma 15", "position": 15}, {"label": "sigma 25",
                                                              "position": 25},
                       {"label": "sigma 50", "position": 50}]}
STYLE = {"name": "stylize", "task": "stylize", "title": "Stylize",
         "axis": {"name": "style", "low": "a", "high": "b"},
         "members": [{"label": "a", "position": 0}, {"label": "b", "position": 1}]}


def spec_for(raw: dict[str, Any]) -> JobSpec:
    fmt = KRITA_FORMATS["U8"]
    return JobSpec(FamilyInfo.from_dict(raw), Rect(0, 0, 2, 2), fmt, bytes(16),
                   Amount(0.5, None))


def test_auto_specs_ask_the_backend_and_name_the_result() -> None:
    spec = auto.auto_spec(spec_for(DENOISE))
    assert spec.request()["strength"] == P.AUTO and "strength_map" not in spec.request()
    assert spec.result_name() == "DNI Denoise auto"
    by_map = auto.auto_spec(spec_for(DENOISE), per_region=True)
    assert by_map.request()["strength_map"] == P.AUTO and "strength" not in by_map.request()
    assert by_map.result_name() == "DNI Denoise auto map"
    with pytest.raises(ClientRequestError, match="Stylize cannot set its strength by itself"):
        auto.auto_spec(spec_for(STYLE))


@pytest.mark.parametrize("header", [{}, {"auto": {"strength": "high"}},
                                    {"auto": {"strength": 1.5}}, {"auto": [0.3]}])
def test_an_answer_without_a_usable_strength_changes_nothing(header: dict[str, Any]) -> None:
    result = Result(2, 2, "rgb8", bytes(12), {"kind": "result", **header})
    with pytest.raises(ClientRequestError, match="did not say which strength"):
        auto.found_strength(result)


# -- GIMP: the dialog's Auto button and map (fake GTK), and the plug-in's map (real server) ---
_FAKES = str(Path(__file__).resolve().parent / "fakes_gimp")


@pytest.fixture(scope="module")
def gimp() -> Iterator[dict[str, Any]]:
    sys.path.insert(0, _FAKES)
    try:
        from gimp_testkit import load_fakes, unload_fakes
    finally:
        sys.path.remove(_FAKES)
    loaded = load_fakes()
    import dni_gimp_dialog

    loaded.update(dialog=dni_gimp_dialog)
    yield loaded
    unload_fakes()


def gimp_dialog(gimp: dict[str, Any], tmp_path: Path, estimate: Any) -> tuple[Any, Any]:
    from dni_client.filters import filter_for
    from dni_client.presets import PresetStore

    config = gimp["entry"].DniFilters().do_create_procedure("plug-in-dni-denoise") \
        .create_config()
    view = gimp["dialog"].FilterDialog(
        config, filter_for("denoise"), [FamilyInfo.from_dict(DENOISE),
                                        FamilyInfo.from_dict({**STYLE, "task": "denoise"})],
        PresetStore(tmp_path / "presets.json"), estimate)
    return view, config


def test_gimp_auto_button_moves_the_slider_to_what_the_backend_found(gimp: dict[str, Any],
                                                                     tmp_path: Path) -> None:
    asked: list[str] = []

    def estimate(family: FamilyInfo) -> tuple[float, str]:
        asked.append(family.name)
        return 0.42, "Auto: noise sigma 30 → strength 42 %"

    view, config = gimp_dialog(gimp, tmp_path, estimate)
    assert view.auto_button.sensitive and view.auto_map.sensitive
    view.auto_button.click()
    assert asked == ["denoise"]
    assert view.strength_adj.get_value() == pytest.approx(0.42)
    assert view.message.get_text() == "Auto: noise sigma 30 → strength 42 %"
    view.auto_map.set_active(True)
    view.write_config()
    assert config.get_property("strength") == pytest.approx(0.42)
    assert config.get_property("auto-map") is True


def test_gimp_auto_is_greyed_out_for_families_that_cannot_estimate(gimp: dict[str, Any],
                                                                   tmp_path: Path) -> None:
    def estimate(_family: FamilyInfo) -> tuple[float, str]:
        raise ClientRequestError("The backend is gone.")

    view, _config = gimp_dialog(gimp, tmp_path, estimate)
    view.auto_button.click()  # an error is shown, the slider stays
    assert view.message.get_text() == "The backend is gone."
    assert view.strength_adj.get_value() == pytest.approx(0.5)
    view.auto_map.set_active(True)
    view.family_combo.set_active_id("stylize")
    assert not view.auto_button.sensitive and not view.auto_map.sensitive
    assert not view.auto_map.get_active()


def test_gimp_estimate_and_auto_map_against_a_real_server(gimp: dict[str, Any], server: Process,
                                                          tmp_path: Path, denoise: dni.Family,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The plug-in's own estimate (the Auto button's callback) and a run with auto-map on,
    pixel for pixel against the engine."""
    import dni_gimp

    gimp["Gimp"].reset(str(tmp_path))
    monkeypatch.setenv("DNI_GIMP_ENDPOINT", server.endpoint)
    image8 = varying_photo()
    h, w = image8.shape[:2]
    rgba = np.concatenate([image8, np.full((h, w, 1), 255, np.uint8)], axis=2) / 255.0
    sys.path.insert(0, _FAKES)
    try:
        from gimp_testkit import as_u8, new_image
    finally:
        sys.path.remove(_FAKES)
    image, layer = new_image(gimp, rgba.astype(np.float32))
    settings = dni_gimp.load_settings()
    session = dni_gimp.new_session(settings)
    try:
        dni_gimp.connect(session)
        family = next(f for f in session.families if f.name == "denoise")
        strength, text = dni_gimp.estimate_strength(image, [layer], session, family)
        found = auto_strength.estimate(denoise.manifest, image8)
        assert strength == pytest.approx(found.strength, abs=1e-4) and "noise sigma" in text
        dni_gimp.apply(image, [layer], session, family, Amount(0.5, None), auto_map=True)
    finally:
        session.shutdown()
    assert close(as_u8(layer.buffer.data)[..., :3], denoise.apply(image8, strength_map="auto"))


# -- Krita: the dialog's Auto button and map (Qt 6 offscreen, the fake `krita`) -------------
KRITA_AUTO = r'''
import numpy as np
from PIL import Image
clean = np.asarray(Image.open(root + "/tests/data/astronaut-crop.png").convert("RGB"))
clean = clean[:40, :48].astype(np.float64)
noise = np.random.default_rng(0).standard_normal(clean.shape) * 30
rgb = np.clip(np.round(clean + noise), 0, 255).astype(np.uint8)
bgra = np.concatenate([rgb[..., ::-1], np.full((40, 48, 1), 255, np.uint8)], axis=2)
layer.setPixelData(bgra.tobytes(), 0, 0, 48, 40)
dialog = dni_krita.open_dialog(family="denoise")
deadline = time.monotonic() + 120
while dialog.previews_shown < 1 and time.monotonic() < deadline:
    pump(0.05)
client = EngineClient.instances[-1]
out["enabled"] = dialog.auto_button.isEnabled()
sent = len(client.submitted)
dialog.auto_button.click()
while (dialog.preview_strength != dialog.state.strength or dialog.state.strength == 0.5
       or len(client.submitted) < sent + 2) and time.monotonic() < deadline:
    pump(0.05)
from dni import auto_strength
from dni.registry import find_family, search_paths
from pathlib import Path
manifest = find_family("denoise", search_paths([Path(families)]))
out["expected"] = auto_strength.estimate(manifest, rgb).strength
out["auto"] = [client.submitted[sent]["strength"], dialog.state.strength,
               dialog.preview_strength, dialog.auto_button.toolTip()]
shown = dialog.previews_shown
dialog.map_box.setCurrentIndex(dialog.map_box.findData("auto"))
while dialog.previews_shown == shown and time.monotonic() < deadline:
    pump(0.05)
out["map"] = [client.submitted[-1]["strength_map"], client.submitted[-1]["strength"]]
dialog.family_box.setCurrentIndex(dialog.family_box.findData("tiny"))
pump(0.1)
out["tiny_enabled"] = dialog.auto_button.isEnabled()
print("RESULT " + json.dumps(out))
'''


def test_krita_auto_button_sets_the_slider_and_the_map_is_offered(families: Path,
                                                                  tmp_path: Path) -> None:

    pytest.importorskip("PyQt6.QtWidgets", reason="PyQt6 is in the test extras "
                        "(pip install -e '.[test]'); without it the Krita dialog is not tested")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_krita_qt6 import SCRIPT  # the same fake Krita on Qt 6, up to its dialog

    preamble = SCRIPT.split("dialog = dni_krita.open_dialog")[0]
    out = run_offscreen(preamble + KRITA_AUTO, ROOT, families, tmp_path / "appdata",
                        timeout=300)
    assert out["enabled"] and not out["tiny_enabled"]
    asked, strength, previewed, status = out["auto"]
    assert asked == "auto"  # the button's job left the strength to the backend
    slider = round(out["expected"] * 1000) / 1000  # the slider's steps
    assert strength == pytest.approx(slider) and previewed == pytest.approx(slider)
    assert status.startswith("Auto: noise sigma ")
    assert out["map"] == ["auto", None]  # the map is the strength
