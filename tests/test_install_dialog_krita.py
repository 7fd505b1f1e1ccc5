"""The Krita host's Install/Update DNI backend dialog (plugin/krita/dni_krita/
install_dialog.py) on Qt 6 offscreen, with Krita's `pykrita` saying Qt 6: a refusal in
plain words, then a run of a stand-in installer (the real installer's run is
tests/test_installer_real.py) whose lines and progress reach the dialog, and the host's
callback once it succeeded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("PyQt6.QtWidgets", reason="PyQt6 is in the test extras "
                    "(pip install -e '.[test]'); without it the dialog is not tested")

SCRIPT = r'''
import json, sys, time, types
pykrita = types.ModuleType("pykrita")
pykrita.qt_major_version = lambda: 6
sys.modules["pykrita"] = pykrita
root, installer, logs = sys.argv[1:4]
sys.path[:0] = [root + "/plugin", root + "/plugin/krita"]
from PyQt6.QtWidgets import QApplication
qapp = QApplication(["krita"])
from dni_client import install_offer
from dni_krita import install_dialog

installed = []
offer = install_offer.decide({"version": "0.0.1"}, True)
dialog = install_dialog.InstallDialog(offer, logs, lambda: installed.append(1))
out = {"title": dialog.windowTitle(), "button": dialog.start_button.text()}

# The checkout's plugin folder carries no installer: said, nothing started.
dialog.start()
out["no_installer"] = dialog.message.text()

install_offer.installer_path = lambda plugin_dir: installer
dialog.wheel.setText(logs + "/missing.whl")
dialog.start()
out["missing_wheel"] = dialog.message.text()

dialog.wheel.setText("")
dialog.start()
deadline = time.monotonic() + 60
while dialog.timer.isActive() and time.monotonic() < deadline:
    qapp.processEvents()
    time.sleep(0.02)
out.update(lines=dialog.output.toPlainText().splitlines(), progress=dialog.progress.value(),
           message=dialog.message.text(), installed=installed,
           argv=dialog.run.request.argv())
print(json.dumps(out))
'''

FAKE_INSTALLER = '''
import sys
print("dni-install: [1/4] creating the backend's environment", flush=True)
print("dni-install: [2/4] torch: cpu build", flush=True)
print("dni-install: [3/4] installing the backend", flush=True)
print("dni-install: [4/4] pointing the plugin", flush=True)
'''


def test_install_dialog_refuses_in_plain_words_then_runs_and_reports(tmp_path: Path) -> None:
    installer = tmp_path / "install.py"
    installer.write_text(FAKE_INSTALLER)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH="")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT), str(installer),
                           str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["title"] == "Update DNI backend" and out["button"] == "Update"
    assert "carries no installer" in out["no_installer"]
    assert "There is no file" in out["missing_wheel"]
    assert out["lines"][-1].endswith("[4/4] pointing the plugin")
    assert out["progress"] == 100 and out["installed"] == [1]
    assert "installed" in out["message"]
    assert out["argv"][2:] == [str(installer), "--no-plugins", "--point-plugin",
                               str(ROOT / "plugin" / "krita" / "dni_krita")]
    assert "[3/4] installing the backend" in (tmp_path / "install.log").read_text()
