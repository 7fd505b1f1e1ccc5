"""installers/install_gimp_plugin.py: where it installs, the folder it writes, and that
the installed plug-in finds dni_client and pyzmq on its own (no virtualenv, no site)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "installers"))
import install_gimp_plugin as installer  # noqa: E402
import plugin_common  # noqa: E402

TAG = plugin_common.python_tag(f"{sys.version_info[0]}.{sys.version_info[1]}",
                               plugin_common.platform_tag())


@pytest.mark.parametrize("system, parts", [
    ("linux", (".config", "GIMP", "3.0", "plug-ins")),
    ("win32", ("AppData", "Roaming", "GIMP", "3.0", "plug-ins")),
    ("darwin", ("Library", "Application Support", "GIMP", "3.0", "plug-ins")),
])
def test_default_plugins_dir_per_system(tmp_path: Path, system: str,
                                        parts: tuple[str, ...]) -> None:
    assert installer.default_plugins_dir(tmp_path, system, use_env=False) == tmp_path.joinpath(
        *parts)


def test_newest_gimp_3_folder_wins(tmp_path: Path) -> None:
    for version in ("2.10", "3.0", "3.2"):
        (tmp_path / ".config" / "GIMP" / version).mkdir(parents=True)
    got = installer.default_plugins_dir(tmp_path, "linux", use_env=False)
    assert got == tmp_path / ".config" / "GIMP" / "3.2" / "plug-ins"
    assert installer.default_plugins_dir(tmp_path, "linux", use_env=False,
                                         version="3.0").parent.name == "3.0"


def test_xdg_config_home_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert installer.default_plugins_dir(Path("/nonexistent"), "linux") == (
        tmp_path / "cfg" / "GIMP" / "3.0" / "plug-ins")


def install(plugins: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "installers" / "install_gimp_plugin.py"),
                           "--plugins-dir", str(plugins), "--offline", *extra],
                          capture_output=True, text=True, timeout=600)


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if "__pycache__" not in p.parts)


def test_install_layout_is_what_gimp_3_loads(tmp_path: Path) -> None:
    plugins = tmp_path / "plug-ins"
    done = install(plugins, "--no-backend", "--endpoint", "tcp://127.0.0.1:6000")
    assert done.returncode == 0, done.stderr
    folder = plugins / "dni-filters"
    entry = folder / "dni-filters.py"  # GIMP 3: the folder is named like the executable
    assert entry.is_file() and os.access(entry, os.X_OK)
    assert entry.read_text().startswith("#!/usr/bin/env python3\n")
    for name in ("dni_gimp.py", "dni_gimp_dialog.py", "dni_gimp_paths.py", "dni_gimp_menus.py",
                 "_lib/dni_client/__init__.py", "_lib/dni_client/mix_state.py",
                 f"_vendor/{TAG}/zmq/__init__.py"):
        assert (folder / name).is_file(), name
    settings = json.loads((folder / "backend.json").read_text())
    assert settings == {"command": [], "endpoint": "tcp://127.0.0.1:6000", "family_paths": []}
    assert os.listdir(plugins) == ["dni-filters"], "no staging leftovers next to it"


def test_reinstall_replaces_the_old_copy_and_is_idempotent(tmp_path: Path) -> None:
    plugins = tmp_path / "plug-ins"
    assert install(plugins, "--no-backend").returncode == 0
    first = tree(plugins)
    stale = plugins / "dni-filters" / "old_module.py"
    stale.write_text("raise SystemExit('stale')\n")
    assert install(plugins, "--no-backend").returncode == 0
    assert not stale.exists()
    assert tree(plugins) == first


def test_installed_plugin_imports_its_own_client_and_pyzmq(tmp_path: Path) -> None:
    plugins = tmp_path / "plug-ins"
    assert install(plugins, "--no-backend").returncode == 0
    folder = plugins / "dni-filters"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import dni_gimp_paths; "
            "dni_gimp_paths.setup(); import zmq, dni_client, dni_client.session; "
            "print(zmq.__file__); print(dni_client.__file__); print(zmq.zmq_version())")
    # -S: no site-packages at all (GIMP's python3 has neither the venv nor pyzmq);
    # started from elsewhere, so the checkout's plugin/ folder cannot be picked up.
    done = subprocess.run([sys.executable, "-S", "-c", code, str(folder)],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": os.defpath})
    assert done.returncode == 0, done.stderr
    zmq_file, client_file, version = done.stdout.split()
    assert Path(zmq_file).is_relative_to(folder / "_vendor" / TAG)
    assert Path(client_file).is_relative_to(folder / "_lib")
    assert version.count(".") == 2


def test_backend_command_is_recorded(tmp_path: Path) -> None:
    plugins = tmp_path / "plug-ins"
    done = install(plugins, "--backend", sys.executable, "--family-path", str(tmp_path))
    assert done.returncode == 0, done.stderr
    settings = json.loads((plugins / "dni-filters" / "backend.json").read_text())
    assert settings["command"] == [str(Path(sys.executable).absolute()), "-m", "dni.server"]
    assert settings["family_paths"] == [str(tmp_path)]
    assert "backend command:" in done.stdout


def test_unknown_platform_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(REPO / "installers" / "install_gimp_plugin.py"),
                           "--plugins-dir", str(tmp_path), "--platforms", "amiga"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown platform 'amiga'" in done.stderr
    assert not (tmp_path / "dni-filters").exists()


def test_abi3_wheels_land_where_every_newer_python_looks(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """pyzmq ships cp312-abi3 wheels: GIMP's Python 3.13 (or 3.14) must find them."""
    import zipfile

    def fake_download(python: str, platform: str, *pip_options: object) -> Path:
        name = ("pyzmq-27.0.0-cp312-abi3-manylinux_2_28_x86_64.whl" if python >= "3.12"
                else f"pyzmq-27.0.0-cp{python.replace('.', '')}-cp311-manylinux_2_28_x86_64.whl")
        wheel = tmp_path / name
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("zmq/__init__.py", f"WHEEL = {name!r}\n")
            zf.writestr("pyzmq-27.0.0.dist-info/METADATA", "")
        return wheel

    monkeypatch.setattr(plugin_common, "download_wheel", fake_download)
    tags = plugin_common.vendor_pyzmq(tmp_path / "_vendor", ["3.11", "3.12", "3.13"],
                                      ["linux_x86_64"], offline=False)
    assert tags == ["cp311-linux_x86_64", "abi3-linux_x86_64"]
    assert not (tmp_path / "_vendor" / "abi3-linux_x86_64" / "pyzmq-27.0.0.dist-info").exists()
    from dni_client import vendoring

    monkeypatch.setattr(vendoring, "platform_tag", lambda *a: "linux_x86_64")
    vendor = tmp_path / "_vendor"
    assert str(vendor / "abi3-linux_x86_64") in vendoring.candidates(str(tmp_path), (3, 13))
    assert str(vendor / "abi3-linux_x86_64") in vendoring.candidates(str(tmp_path), (3, 12))
    assert str(vendor / "cp311-linux_x86_64") in vendoring.candidates(str(tmp_path), (3, 11))
    assert str(vendor / "abi3-linux_x86_64") not in vendoring.candidates(str(tmp_path), (3, 11))
