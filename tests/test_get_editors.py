"""Get more families… in the editors: the shared list model, the GIMP dialog on the fake
GimpUi/GTK and the Krita dialog on PyQt6 offscreen, each installing a family from a real
HTTP server on loopback through a session whose client runs the real installer
(tests/fakes/engine_client.py); the installed family is then in the session's list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from get_util import Files, catalogue_text, compact_pair, http_server, serve_pair, write_catalogue

sys.path.insert(0, str(Path(__file__).resolve().parent / "fakes"))
from engine_client import EngineClient  # noqa: E402

from dni.engine import Engine  # noqa: E402
from dni_client import launcher  # noqa: E402
from dni_client.catalogue_model import (  # noqa: E402
    FAILED,
    INSTALLED,
    CatalogueModel,
    size_text,
)
from dni_client.session import Session  # noqa: E402
from dni_client.settings import BackendSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def served(tmp_path, monkeypatch) -> Iterator[Files]:
    """A catalogue with one family on a loopback HTTP server, named by DNI_CATALOGUE."""
    pair = compact_pair()
    files = Files()
    serve_pair(files, pair)
    with http_server(files) as url:
        monkeypatch.setenv("DNI_CATALOGUE",
                           str(write_catalogue(tmp_path, catalogue_text(url, pair, "general"))))
        yield files


@pytest.fixture
def session(tmp_path, monkeypatch) -> Session:
    EngineClient.engine = Engine("cpu", [])
    EngineClient.mode = "ok"
    monkeypatch.setattr(launcher, "port_open", lambda *a, **k: True)
    s = Session(BackendSettings(str(tmp_path)), installer="-", client_factory=EngineClient)
    s.wait_connected(timeout=10)
    return s


def _until(condition: Any, tick: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        tick()
        time.sleep(0.01)


def test_the_model_lists_installs_and_refreshes_the_families(served, session) -> None:
    model = CatalogueModel(session)
    redraws: list[int] = []
    model.changed.connect(lambda: redraws.append(1))
    model.refresh()
    (item,) = model.items
    assert (item.name, item.licence, item.state) == ("general", "BSD-3-Clause", "available")
    assert item.size_text.endswith("kB") and "soft → crisp" in item.tooltip
    assert "general" not in {f.name for f in session.families}
    model.install("general")
    assert model.installing and item.status_text.startswith("Downloading")
    _until(lambda: item.state != "installing", session.tick)
    assert item.state == INSTALLED, item.message
    assert "correlated" in item.status_text
    assert "general" in {f.name for f in session.families}
    assert len(redraws) >= 3
    model.refresh()
    assert model.item("general").state == INSTALLED


def test_a_failed_install_says_why(served, session) -> None:
    served.trouble["/general/wdn.pth"] = "404"
    model = CatalogueModel(session)
    model.refresh()
    model.install("general")
    item = model.item("general")
    _until(lambda: item.state != "installing", session.tick)
    assert item.state == FAILED and "404" in item.status_text
    assert item.can_install  # the artist may try again


def test_sizes_read_like_a_download_dialog() -> None:
    assert size_text(4885111) == "4.9 MB"
    assert size_text(67040989) == "67 MB"
    assert size_text(2_500_000_000) == "2.5 GB"
    assert size_text(900) == "1 kB"


@pytest.fixture
def gimp_fakes() -> Iterator[dict[str, Any]]:
    fakes_dir = str(Path(__file__).resolve().parent / "fakes_gimp")
    sys.path.insert(0, fakes_dir)
    try:
        from gimp_testkit import load_fakes, unload_fakes
    finally:
        sys.path.remove(fakes_dir)
    loaded = load_fakes()
    import dni_gimp_get_families
    from gi.repository import GimpUi, GLib

    loaded.update(dialog=dni_gimp_get_families, GimpUi=GimpUi, GLib=GLib)
    yield loaded
    GimpUi.Dialog.before_response = None
    sys.modules.pop("dni_gimp_get_families", None)
    unload_fakes()


def test_gimp_dialog_installs_with_progress_and_ticks_only_while_open(served, session,
                                                                      gimp_fakes) -> None:
    GimpUi, GLib = gimp_fakes["GimpUi"], gimp_fakes["GLib"]
    seen: dict[str, Any] = {}

    def user(dialog: Any) -> None:
        shown = seen["dialog"]
        row = shown.rows["general"]
        seen["before"] = (row.size.get_text(), row.licence.get_text(), row.button.get_label(),
                          row.status.get_text())
        row.button.click()
        seen["during"] = row.button.get_label()
        _until(lambda: shown.model.item("general").state != "installing", GLib.run_timeouts)
        seen["after"] = (row.status.get_text(), row.button.get_sensitive())

    GimpUi.Dialog.before_response = user
    dialog = gimp_fakes["dialog"].GetFamiliesDialog(session)
    seen["dialog"] = dialog
    dialog.run()
    size, licence, label, status = seen["before"]
    assert (licence, label, status) == ("BSD-3-Clause", "Install", "Not installed")
    assert size.endswith("kB")
    assert seen["during"] == "Cancel"
    status, sensitive = seen["after"]
    assert status.startswith("Installed") and not sensitive
    assert not GLib.timeouts  # the timer went with the dialog
    assert dialog.dialog.props.get("destroyed")
    assert "general" in {f.name for f in session.families}


KRITA_SCRIPT = r'''
import json, sys, time, types
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
from dni.engine import Engine
from engine_client import EngineClient
from dni_client import launcher
from dni_client.session import Session
from dni_client.settings import BackendSettings
from dni_krita.get_families import GetFamiliesDialog

EngineClient.engine = Engine("cpu", [])
launcher.port_open = lambda *a, **k: True
session = Session(BackendSettings(sys.argv[2]), installer="-", client_factory=EngineClient)
session.wait_connected(timeout=10)
dialog = GetFamiliesDialog(session)
dialog.show()
row = dialog.rows["general"]
out = {"before": [row.size.text(), row.licence.text(), row.button.text(), row.status.text()]}
row.button.click()
out["during"] = [row.button.text(), row.progress.isVisible()]
deadline = time.monotonic() + 60
while dialog.model.item("general").state == "installing" and time.monotonic() < deadline:
    qapp.processEvents()
    time.sleep(0.01)
out["after"] = [row.status.text(), row.button.isEnabled(), row.progress.isVisible()]
out["families"] = [f.name for f in session.families]
dialog.close()
print(json.dumps(out))
'''


def test_krita_dialog_on_qt6_installs_with_progress(served, tmp_path) -> None:
    pytest.importorskip("PyQt6.QtWidgets", reason="PyQt6 is in the test extras "
                        "(pip install -e '.[test]'); without it the Qt dialog is not tested")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, "-c", KRITA_SCRIPT, str(ROOT), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    size, licence, label, status = out["before"]
    assert (licence, label, status) == ("BSD-3-Clause", "Install", "Not installed")
    assert size.endswith("kB")
    assert out["during"] == ["Cancel", True]
    status, enabled, progress_visible = out["after"]
    assert status.startswith("Installed") and "correlated" in status
    assert not enabled and not progress_visible
    assert "general" in out["families"]
