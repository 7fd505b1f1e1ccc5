"""End to end, as an artist installs, in the real Krita with a temporary HOME:

1. the Krita plugin alone (as from its zip): inside Krita it finds no backend, offers an
   install, and its install dialog (the test clicks Install) runs the installer the plugin
   carries against the checkout's wheel and a loopback package index (the real CPU torch
   wheel included; see tests/test_installer_real.py); then the plugin starts that backend
   and denoises with the bundled family;
2. installers/install.py from the checkout into the same HOME (an upgrade in place that
   also puts the plugin into the Krita it finds); Krita again: the plugin install.py put
   there reaches the backend install.py put into its own environment.

Skips without krita, xvfb-run and xauth."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import krita_pyzmq_option
from test_installer_real import index_url, user_env, wheel, wheelhouse  # noqa: F401
from test_krita_e2e import _clean_env, _free_port, _port_open

import dni

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "installers"))
from dni_install import kritarc as kritarc_lines  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("krita", "xvfb-run", "xauth")),
    reason="needs Debian's krita, xvfb-run and xauth (apt-get install -y krita xvfb xauth)")


def add_check_plugin(home: Path) -> None:
    pykrita = home / ".local/share/krita/pykrita"
    (pykrita / "dni_e2e_installed").mkdir(exist_ok=True)
    shutil.copy(HERE / "installed_checks.py", pykrita / "dni_e2e_installed" / "__init__.py")
    (pykrita / "dni_e2e_installed.desktop").write_text(
        "[Desktop Entry]\nType=Service\nServiceTypes=Krita/PythonPlugin\n"
        "X-KDE-Library=dni_e2e_installed\nX-Python-2-Compatible=false\n"
        "Name=DNI installed e2e\nComment=test driver\n")
    kritarc = home / ".config/kritarc"
    assert "enable_dni_krita=true" in kritarc.read_text()
    kritarc_lines.enable(kritarc, "dni_e2e_installed")  # Krita rewrites kritarc on quit


def run_krita(home: Path, out: Path, conf: dict[str, object], env_extra: dict[str, str],
              seconds: int) -> dict:
    env = dict(_clean_env(home, out, conf), **env_extra)  # type: ignore[arg-type]
    for _attempt in range(2):  # xvfb-run -a can lose a race for a display number
        proc = subprocess.run(
            ["timeout", str(seconds), "xvfb-run", "-a", "-s", "-screen 0 1280x800x24",
             "krita", "--nosplash"], env=env, capture_output=True, text=True,
            timeout=seconds + 20)
        if "Xvfb failed to start" not in proc.stderr:
            break
    results_file = out / "results.json"
    assert results_file.exists(), f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    results = json.loads(results_file.read_text())
    assert "error" not in results, results["error"]
    assert results.get("finished"), results
    return results["checks"]


def assert_reached(checks: dict, dni_command: Path, port: int) -> dict:
    started = checks["installed_backend_started_by_plugin"]
    assert started["ok"], started
    assert started["argv"][:2] == [str(dni_command), "serve"]
    assert "denoise" in started["families"] and started["version"] == dni.__version__
    assert checks["bundled_denoise_ran"]["ok"], checks["bundled_denoise_ran"]
    deadline = time.monotonic() + 10
    while _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _port_open(port), "the backend outlived Krita"
    return started


def test_install_from_inside_krita_then_with_install_py(
        index_url: str, wheel: Path, tmp_path: Path) -> None:  # noqa: F811
    home = tmp_path / "home"
    home.mkdir()
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    env = user_env(home, tmp_path)  # no pip settings of this machine: the loopback index
    pip_env = {k: v for k, v in env.items() if k.startswith(("PIP_", "DNI_"))}
    dni_command = home / ".local/share/dni/venv/bin/dni"

    # 1. The plugin alone; the backend from its install dialog, inside Krita.
    subprocess.run([sys.executable, str(ROOT / "installers" / "install_krita_plugin.py"),
                    "--home", str(home), *krita_pyzmq_option(), "--no-backend", "--endpoint",
                    endpoint],
                   check=True, capture_output=True, timeout=300,
                   env=dict(os.environ, HOME=str(home)))
    add_check_plugin(home)
    checks = run_krita(home, tmp_path / "out1", {"mode": "dialog", "wheel": str(wheel),
                                                 "index_url": index_url}, pip_env, 1500)
    assert checks["install_offered"]["ok"], checks["install_offered"]
    installed = checks["installed_from_the_dialog"]
    assert installed["ok"], installed
    assert installed["command"] == [str(dni_command)]
    assert installed["steps"][-1].startswith("dni-install: [4/4] pointing the plugin")
    first = assert_reached(checks, dni_command, port)

    # 2. install.py from the checkout into the same HOME: upgrade, plugin into this Krita.
    done = subprocess.run(
        [sys.executable, str(ROOT / "installers" / "install.py"), "--wheel", str(wheel),
         "--index-url", index_url, "--endpoint", endpoint], capture_output=True, text=True,
        env=env, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "upgrading in place" in done.stdout and "krita plugin: " in done.stdout
    add_check_plugin(home)
    second = assert_reached(run_krita(home, tmp_path / "out2", {"mode": "installed"},
                                      pip_env, 300), dni_command, port)
    print(f"in-editor install {installed['seconds']} s; backend up in {first['seconds']} s, "
          f"then {second['seconds']} s after install.py")
