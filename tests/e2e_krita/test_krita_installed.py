"""End to end, as an artist installs: installers/install.py for real into a temporary
HOME (backend from the checkout's wheel and a loopback package index, the real CPU torch
wheel included; see tests/test_installer_real.py), then the real Krita, started with that
HOME and a clean environment, loads the plugin install.py put there, and the plugin starts
the backend install.py put into its own environment and denoises with it. Skips without
krita, xvfb-run and xauth."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_installer_real import index_url, user_env, wheel, wheelhouse  # noqa: F401
from test_krita_e2e import _clean_env, _free_port, _port_open

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("krita", "xvfb-run", "xauth")),
    reason="needs Debian's krita, xvfb-run and xauth (apt-get install -y krita xvfb xauth)")


def test_krita_loads_the_installed_plugin_and_reaches_the_installed_backend(
        index_url: str, wheel: Path, tmp_path: Path) -> None:  # noqa: F811
    home, out = tmp_path / "home", tmp_path / "out"
    home.mkdir()
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    done = subprocess.run(
        [sys.executable, str(ROOT / "installers" / "install.py"), "--wheel", str(wheel),
         "--index-url", index_url, "--torch", "cpu", "--torch-index-url", index_url,
         "--endpoint", endpoint], capture_output=True, text=True,
        env=user_env(home, tmp_path), timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    pykrita = home / ".local/share/krita/pykrita"
    dni = home / ".local/share/dni/venv/bin/dni"
    assert json.loads((pykrita / "dni_krita/backend.json").read_text())["command"] == [str(dni)]

    (pykrita / "dni_e2e_installed").mkdir()
    shutil.copy(HERE / "installed_checks.py", pykrita / "dni_e2e_installed" / "__init__.py")
    (pykrita / "dni_e2e_installed.desktop").write_text(
        "[Desktop Entry]\nType=Service\nServiceTypes=Krita/PythonPlugin\n"
        "X-KDE-Library=dni_e2e_installed\nX-Python-2-Compatible=false\n"
        "Name=DNI installed e2e\nComment=test driver\n")
    kritarc = home / ".config/kritarc"
    assert kritarc.read_text().rstrip().endswith("enable_dni_krita=true")
    with kritarc.open("a") as f:
        f.write("enable_dni_e2e_installed=true\n")  # [python] is the last section

    assert not _port_open(port)
    for _attempt in range(2):  # xvfb-run -a can lose a race for a display number
        proc = subprocess.run(
            ["timeout", "240", "xvfb-run", "-a", "-s", "-screen 0 1280x800x24", "krita",
             "--nosplash"], env=_clean_env(home, out, {}), capture_output=True, text=True,
            timeout=260)
        if "Xvfb failed to start" not in proc.stderr:
            break
    results_file = out / "results.json"
    assert results_file.exists(), f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    results = json.loads(results_file.read_text())
    assert "error" not in results, results["error"]
    checks = results["checks"]
    started = checks["installed_backend_started_by_plugin"]
    assert started["ok"], started
    assert started["argv"][0] == str(dni) and started["argv"][1] == "serve"
    assert "denoise" in started["families"]
    import dni as backend_package

    assert started["version"] == backend_package.__version__
    assert checks["bundled_denoise_ran"]["ok"], checks["bundled_denoise_ran"]
    deadline = time.monotonic() + 10
    while _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _port_open(port), "the backend outlived Krita"
    print(f"krita + installed backend: {started}")
