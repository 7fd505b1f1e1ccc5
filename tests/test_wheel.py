"""The package as users get it: a wheel that carries the bundled families, installed
(not editable) into a fresh virtualenv outside the checkout, lists and runs them."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_WHEEL_MB = 40  # the families travel as fp16 safetensors


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the build needs only setuptools, which the test venv has.
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = out.glob("dni-*.whl")
    return found


def test_the_wheel_carries_the_families_and_the_version(wheel: Path) -> None:
    import dni

    assert wheel.name.startswith(f"dni-{dni.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    for family in ("denoise", "super-resolve", "stylize", "stylize-stroke"):
        assert f"dni_families/{family}/family.toml" in names
        assert any(n.startswith(f"dni_families/{family}/") and n.endswith(".safetensors")
                   for n in names)
    assert "dni/catalogue.toml" in names  # `dni get` works from an installed wheel
    # Families only: no recipes, report or figures.
    assert not any(n.startswith("dni_families/re") for n in names)
    assert wheel.stat().st_size < MAX_WHEEL_MB * 2**20


def test_installed_elsewhere_it_lists_and_runs_the_bundled_families(wheel: Path,
                                                                    tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    # The heavy dependencies (torch, ...) come from this test environment, appended after
    # the new venv's own site-packages; `dni` itself only from the wheel.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"], check=True,
                             capture_output=True, text=True).stdout.strip()
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]]
            if Path(p).is_dir()]
    Path(purelib, "deps-from-tests.pth").write_text("\n".join(deps) + "\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                              "--no-index", str(wheel)], capture_output=True, text=True,
                             timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    dni_cmd = str(venv / "bin" / "dni")

    where = subprocess.run([str(python), "-c", "import dni, dni_families; "
                            "print(dni.__file__); print(dni_families.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert where.returncode == 0, where.stderr[-2000:]
    assert all(line.startswith(purelib) for line in where.stdout.split()), where.stdout

    families = subprocess.run([dni_cmd, "families"], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=300)
    assert families.returncode == 0, families.stderr[-2000:]
    listed = {line.split()[0] for line in families.stdout.splitlines() if line.strip()}
    assert {"denoise", "super-resolve", "stylize", "stylize-stroke"} <= listed

    out = tmp_path / "denoised.png"
    apply = subprocess.run([dni_cmd, "apply", str(ROOT / "tests" / "data" / "rocket-small.png"),
                            "-o", str(out), "--family", "denoise", "--strength", "0.4"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert apply.returncode == 0, apply.stderr[-2000:]
    from PIL import Image

    with Image.open(out) as result, Image.open(ROOT / "tests" / "data" / "rocket-small.png") \
            as source:
        assert result.size == source.size

    version = subprocess.run([dni_cmd, "--version"], capture_output=True, text=True,
                             env=env, timeout=120)
    import dni

    assert version.stdout.strip() == f"dni {dni.__version__}"
