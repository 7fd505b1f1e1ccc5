"""The Krita plugin on Qt 6, as in Krita 6: offscreen with PyQt6 from PyPI, PyQt5 refused
by an import guard like Krita 6's, and the fake `krita` with a real Qt UI around it
(tests/fakes/krita_qt.py). The extension registers and builds Filter ▸ DNI, the docker
builds, and the dialog previews, applies and re-runs against the real engine. The Qt 5
path is the one the real-Krita end-to-end test drives."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_offscreen

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("PyQt6.QtWidgets", reason="PyQt6 is in the test extras "
                    "(pip install -e '.[test]'); without it the Qt 6 path is not tested")

SCRIPT = r'''
import importlib.abc, json, sys, time, types

class RefusePyQt5(importlib.abc.MetaPathFinder):
    """What Krita 6 does: importing PyQt5 fails."""
    def find_spec(self, name, path=None, target=None):
        if name == "PyQt5" or name.startswith("PyQt5."):
            raise ModuleNotFoundError("This version of Krita is not compatible with PyQt5!")
        return None

sys.meta_path.insert(0, RefusePyQt5())
pykrita = types.ModuleType("pykrita")
pykrita.qt_major_version = lambda: 6
sys.modules["pykrita"] = pykrita
root, families, appdata = sys.argv[1:4]
sys.path[:0] = [root + "/tests", root + "/tests/fakes", root + "/plugin/krita"]

from PyQt6.QtWidgets import QApplication
qapp = QApplication(["krita"])

import importlib
import krita as data                     # tests/fakes/krita.py
import krita_qt                          # its Qt: PyQt6, because Krita said 6
sys.modules["krita"] = krita_qt          # the plugin sees Krita with a UI from now on
app = krita_qt.Krita.reset()
app._dni_fake_no_register = True         # until the test's backend is in place
from dni_krita import qt
from dni.engine import Engine
from engine_client import EngineClient
from dni_client import launcher
from dni_client.session import Session
from dni_krita import plugin as plugin_module
from dni_krita.settings import KritaSettings

out = {"qt": qt.QT_MAJOR, "pyqt5_loaded": "PyQt5" in sys.modules}
app.app_data = appdata
EngineClient.engine = Engine("cpu", [families])
launcher.port_open = lambda *a, **k: True
settings = KritaSettings.load()
plugin_module.replace(plugin_module.Plugin(settings, Session(
    settings.backend, installer="-", client_factory=EngineClient)))

import dni_krita
app._dni_fake_no_register = False
importlib.reload(dni_krita)              # as Krita loads it: registers extension and docker

def pump(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        qapp.processEvents()
        time.sleep(0.01)

pump(0.2)
subs = [a for a in app.window.filter_menu.actions() if a.objectName() == "dni"]
out["menu"] = [a.text() for a in subs[0].menu().actions()] if subs else []
out["docker"] = type(app.dockers[0]).__name__ if app.dockers else None

doc = app.add_document(data.Document(48, 40))
layer = doc.createNode("Paint", "paintlayer")
doc.rootNode().addChildNode(layer, None)
doc.setActiveNode(layer)
layer.setPixelData(bytes((i * 37) % 256 for i in range(48 * 40 * 4)), 0, 0, 48, 40)
dialog = dni_krita.open_dialog(task="denoise")
deadline = time.monotonic() + 120  # a busy 2-core machine loads torch slowly
while dialog.previews_shown < 1 and time.monotonic() < deadline:
    pump(0.05)
shown = dialog.previews_shown
dialog.set_strength(0.2)
while (dialog.preview_strength != 0.2) and time.monotonic() < deadline:
    pump(0.05)
out["previews"] = [shown, dialog.previews_shown, dialog.preview_strength]
# While the artist looks, the same crop is rendered at the grid's strengths; then a slider
# move shows a blend of the two either side at once, and its exact preview after.
while dialog.cache.missing(0.5) is not None and time.monotonic() < deadline:
    pump(0.05)
out["cache_filled"] = len(dialog.cache)
stand_ins, exact = dialog.stand_ins_shown, dialog.previews_shown
dialog.set_strength(0.6)
out["stand_in_at_once"] = dialog.stand_ins_shown - stand_ins
while dialog.preview_strength != 0.6 and time.monotonic() < deadline:
    pump(0.05)
out["exact_after_stand_in"] = dialog.preview_strength
exact = dialog.previews_shown
dialog.set_strength(0.75)  # a grid point: its own picture, with no job at all
out["cached_exact_at_once"] = [dialog.previews_shown - exact, dialog.preview_strength,
                               dialog.previews.pending is None or dialog.previews.pending.done]
dialog.set_strength(0.2)
while dialog.preview_strength != 0.2 and time.monotonic() < deadline:
    pump(0.05)
# The split view paints both halves; the on-canvas preview comes and goes without a trace.
def grab(split):
    dialog.preview.set_split(split)
    picture = dialog.preview.grab().toImage()
    # The 48x40 crop sits in the middle of the 384 px view, at 100 %.
    return [picture.pixelColor(x, 190).name() for x in range(170, 214, 2)]

before, after, half = grab(1.0), grab(0.0), grab(0.5)
out["split"] = [before != after, half[:11] == before[:11], half[12:] == after[12:]]
dialog.on_canvas.setChecked(True)
while (dialog.canvas_preview is None or dialog.canvas_preview.updates < 1) \
        and time.monotonic() < deadline:
    pump(0.05)
out["canvas_on"] = [[n.name(), n.locked()] for n in doc.rootNode().childNodes()]
out["canvas_pixels"] = dialog.canvas_preview.layer.pixelData(0, 0, 48, 40) \
    != bytes(48 * 40 * 4)
dialog.on_canvas.setChecked(False)
pump(0.1)
out["canvas_off"] = [n.name() for n in doc.rootNode().childNodes()]
out["families"] = [f.name for f in dialog.families]
from PyQt6.QtWidgets import QLabel
out["marks"] = [w.text() for w in dialog.findChildren(QLabel, "member_mark")]
# Enter in the % box sets the strength and applies nothing.
from PyQt6.QtCore import Qt
from PyQt6.QtTest import QTest
dialog.spin.lineEdit().selectAll()
QTest.keyClicks(dialog.spin, "20")
QTest.keyClick(dialog.spin, Qt.Key.Key_Return)
pump(0.1)
out["enter_applied"] = dialog.running is not None or dialog.result_layer is not None
out["enter_strength"] = dialog.state.strength
# A family preset cannot be renamed or deleted: its buttons are off.
dialog.preset_box.setCurrentIndex(1)
dialog._preset_chosen(1)
out["family_preset"] = [dialog.preset_box.currentText(),
                        dialog.preset_buttons["Rename…"].isEnabled(),
                        dialog.preset_buttons["Delete"].isEnabled()]
dialog.set_strength(0.2)
pump(0.1)
dialog.apply()
while dialog.result_layer is None and time.monotonic() < deadline:
    pump(0.05)
out["applied"] = dialog.result_layer.name() if dialog.result_layer else None
docker = app.dockers[0]
docker.refresh()
docker.slider.setValue(700)
docker.rerun()
while (plugin_module.instance().session.current is not None
       or plugin_module.instance().last_run.layer is None) and time.monotonic() < deadline:
    pump(0.05)
out["layers"] = [n.name() for n in doc.rootNode().childNodes()]
# An N-way mix re-run from the docker, slider untouched: exactly the same mix again.
from dni_client.job import Amount
from dni_krita.core import Options
plugin = plugin_module.instance()
plugin.start_job(doc, layer, plugin.session.family("tiny3"),
                 Options(Amount(None, (0.2, 0.3, 0.5))), lambda new, error: None)
while plugin.last_run.layer is None and time.monotonic() < deadline:
    pump(0.05)
docker.refresh()
mixed = plugin.last_run.layer
docker._watch_selection()  # what its timer does: the new DNI layer is the active one
docker.rerun()
while (plugin.session.current is not None or plugin.last_run.layer is None
       or plugin.last_run.layer is mixed) and time.monotonic() < deadline:
    pump(0.05)
pump(0.1)
out["rerun_mix"] = [n.name() for n in doc.rootNode().childNodes()]
out["docker_label"] = docker.last_label.text()
out["pyqt5_loaded_at_end"] = "PyQt5" in sys.modules
print("RESULT " + json.dumps(out))
'''


def test_the_plugin_runs_on_qt6_with_pyqt5_refused(tiny_family_dir: Path,
                                                   tmp_path: Path) -> None:
    out = run_offscreen(SCRIPT, ROOT, tiny_family_dir, tmp_path / "appdata", timeout=300)
    assert out["qt"] == 6 and not out["pyqt5_loaded"] and not out["pyqt5_loaded_at_end"]
    from dni_client.filters import FILTERS

    assert [f"{f.title}…" for f in FILTERS] + ["DNI Settings…", "Get more DNI families…"] \
        == out["menu"]
    assert out["docker"] == "DNIDocker"
    first, after, strength = out["previews"]
    assert first >= 1 and after > first and strength == 0.2
    assert out["cache_filled"] >= 5
    assert out["stand_in_at_once"] == 1 and out["exact_after_stand_in"] == 0.6
    assert out["cached_exact_at_once"] == [1, 0.75, True], out["cached_exact_at_once"]
    # Before | after at the split: the two halves show different pixels.
    assert out["split"] == [True, True, True], out["split"]
    assert out["canvas_on"] == [["Paint", False], ["DNI preview", True]]
    assert out["canvas_pixels"] and out["canvas_off"] == ["Paint"]
    # The denoise families (the bundled one first: named like the filter, it is the default).
    assert out["families"] == ["denoise", "tiny", "tiny3"]
    # Every member named along the slider (the bundled denoise family: three noise levels).
    assert len(out["marks"]) == 3 and all(m.startswith("<small>") for m in out["marks"])
    assert out["enter_applied"] is False and out["enter_strength"] == 0.2, (
        out["enter_applied"], out["enter_strength"])
    name, rename_on, delete_on = out["family_preset"]
    assert name.endswith("[family]") and not rename_on and not delete_on
    assert out["applied"] == "DNI Denoise 20%"
    # The docker's Re-run replaced the dialog's result with its own strength.
    assert out["layers"] == ["Paint", "DNI Denoise 70%"]
    # The mix re-run made its result again in its place, with the same mix (not "50 %"):
    # the new layer was selected, so the docker re-rendered that DNI layer.
    assert out["rerun_mix"] == ["Paint", "DNI Denoise 70%", "DNI Tiny3 20/30/50"]
    assert "DNI Tiny3 20/30/50" in out["docker_label"], out["docker_label"]


UI_FAILS = r'''
import importlib, json, sys, time, types
pykrita = types.ModuleType("pykrita")
pykrita.qt_major_version = lambda: 6
sys.modules["pykrita"] = pykrita
root = sys.argv[1]
sys.path[:0] = [root + "/tests", root + "/tests/fakes", root + "/plugin/krita"]
from PyQt6.QtWidgets import QApplication
qapp = QApplication(["krita"])
import krita_qt
sys.modules["krita"] = krita_qt
app = krita_qt.Krita.reset()
app._dni_fake_no_register = True
import dni_krita
from dni_krita import qt
shown = []
qt.QMessageBox.warning = staticmethod(lambda parent, title, text: shown.append(text))
sys.modules["dni_krita.extension"] = None  # the UI module cannot be imported
app._dni_fake_no_register = False
importlib.reload(dni_krita)
for _ in range(20):
    qapp.processEvents()
    time.sleep(0.01)
print("RESULT " + json.dumps(shown))
'''


def test_a_ui_that_cannot_load_tells_the_artist_why() -> None:
    shown = run_offscreen(UI_FAILS, ROOT)
    assert len(shown) == 1 and "could not load" in shown[0] and "installer" in shown[0]


NO_BACKEND = r'''
import importlib, json, sys, time, types
pykrita = types.ModuleType("pykrita")
pykrita.qt_major_version = lambda: 6
sys.modules["pykrita"] = pykrita
root, appdata = sys.argv[1:3]
sys.path[:0] = [root + "/tests", root + "/tests/fakes", root + "/plugin/krita"]
from PyQt6.QtWidgets import QApplication
qapp = QApplication(["krita"])
import krita as data
import krita_qt
sys.modules["krita"] = krita_qt
app = krita_qt.Krita.reset()
app._dni_fake_no_register = True
app.app_data = appdata
app.writeSetting("DNI", "autostart", "false")  # nothing answers, nothing may be started
from dni_client import launcher
launcher.port_open = lambda *a, **k: False
import dni_krita
app._dni_fake_no_register = False
importlib.reload(dni_krita)
doc = app.add_document(data.Document(16, 16))
layer = doc.createNode("Paint", "paintlayer")
doc.rootNode().addChildNode(layer, None)
doc.setActiveNode(layer)
dialog = dni_krita.open_dialog(task="denoise")
deadline = time.monotonic() + 20
while not dialog.retry_button.isVisibleTo(dialog) and time.monotonic() < deadline:
    qapp.processEvents()
    time.sleep(0.02)
docker = app.dockers[0]
docker.refresh()
print("RESULT " + json.dumps({
    "dialog": [dialog.retry_button.isVisibleTo(dialog),
               dialog.settings_button.isVisibleTo(dialog), dialog.status.text(),
               dialog.apply_button.isEnabled()],
    "docker": [docker.connect_button.isVisibleTo(docker),
               docker.settings_button.isVisibleTo(docker)]}))
'''


def test_no_backend_offers_retry_and_settings(tmp_path: Path) -> None:
    out = run_offscreen(NO_BACKEND, ROOT, tmp_path / "appdata")
    retry, settings, status, apply_on = out["dialog"]
    assert retry and settings and not apply_on, out
    assert "No backend" in status and "DNI Settings" in status
    assert out["docker"] == [True, True]
