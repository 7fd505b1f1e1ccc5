"""Shared test fixtures: tiny families built on the fly, real images."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from dni.archs.plain import PlainConvNet


def write_family(root: Path, name: str, states: list[dict[str, torch.Tensor]], *,
                 options: dict[str, object], scale: int = 1,
                 positions: list[float] | None = None, task: str = "other",
                 architecture: str = "plain-conv", presets: str = "") -> Path:
    """Write a family folder (manifest + safetensors members) and return it."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    positions = positions or list(range(len(states)))
    lines = [
        f'name = "{name}"', f'task = "{task}"', f'title = "{name.title()}"',
        f'architecture = "{architecture}"', f"scale = {scale}", "[architecture_options]",
    ]
    for key, value in options.items():
        lines.append(f"{key} = {value!r}".replace("'", '"').replace("True", "true")
                     .replace("False", "false"))
    lines += ["[axis]", 'name = "test axis"', 'low = "low end"', 'high = "high end"']
    for i, (state, position) in enumerate(zip(states, positions, strict=True)):
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / f"m{i}.safetensors"))
        lines += ["[[members]]", f'label = "member {i}"', f'file = "m{i}.safetensors"',
                  f"position = {position}"]
    (folder / "family.toml").write_text("\n".join(lines) + "\n" + presets)
    return folder


def correlated_states(options: dict[str, object], count: int, seed: int = 0,
                      spread: float = 0.2) -> list[dict[str, torch.Tensor]]:
    """A base network and `count - 1` perturbed copies of it: 'fine-tuned' members."""
    torch.manual_seed(seed)
    base = PlainConvNet(**options).state_dict()  # type: ignore[arg-type]
    states = [base]
    for i in range(1, count):
        g = torch.Generator().manual_seed(seed + i)
        states.append({k: v + spread * v.std().nan_to_num() * torch.randn(v.shape, generator=g)
                       if v.is_floating_point() else v.clone() for k, v in base.items()})
    return states


TINY = {"features": 8, "layers": 3}
TINY_X2 = {"features": 8, "layers": 3, "scale": 2}
IDENTITY = {"features": 4, "layers": 1}


def make_families(root: Path) -> Path:
    write_family(root, "tiny", correlated_states(TINY, 2), options=TINY, task="denoise",
                 presets='[[presets]]\nname = "Half"\nstrength = 0.5\n')
    write_family(root, "tiny3", correlated_states(TINY, 3, seed=3), options=TINY,
                 positions=[15, 25, 50], task="denoise")
    write_family(root, "tiny-x2", correlated_states(TINY_X2, 2, seed=5), options=TINY_X2,
                 scale=2, task="super-resolve")
    zero = {k: torch.zeros_like(v) for k, v in PlainConvNet(**IDENTITY).state_dict().items()}
    write_family(root, "identity", [zero, zero], options=IDENTITY)
    return root


@pytest.fixture(scope="session")
def tiny_family_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the families tiny, tiny3, tiny-x2 and identity."""
    return make_families(tmp_path_factory.mktemp("families"))


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the tests away from the real user's family folder."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.delenv("DNI_FAMILY_PATH", raising=False)


DATA = Path(__file__).parent / "data"


def photo(name: str = "astronaut-crop.png") -> np.ndarray:
    """A real photo (NASA and scikit-image sample data, public domain) as uint8 RGB."""
    from PIL import Image

    with Image.open(DATA / name) as img:
        return np.asarray(img.convert("RGB")).copy()


def krita_pyzmq_option() -> list[str]:
    """How the plugin installer should vendor pyzmq for the Krita on this machine:
    `--offline` (this venv's own pyzmq) when Krita embeds this Python (Debian 12's Krita
    5.1: 3.11), else no option: the installer then downloads pyzmq for every Python Krita
    builds use (Debian 13's Krita 5.2 embeds 3.13)."""
    import glob

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "installers"))
    from dni_install import pythons

    modules = [m for pattern in ("/usr/lib/*/kritaplugins/kritapykrita.so",
                                 "/usr/lib*/kritaplugins/kritapykrita.so",
                                 "/usr/local/lib/*/kritaplugins/kritapykrita.so")
               for m in glob.glob(pattern)]
    embedded = [v for m in modules for v in pythons.linked_in(Path(m))]
    mine = f"{sys.version_info.major}.{sys.version_info.minor}"
    return ["--offline"] if not embedded or mine in embedded else []


def run_offscreen(script: str, *args: object, timeout: float = 120,
                  cwd: Path | None = None) -> dict:
    """Run `script` (Python source) in a fresh interpreter with Qt offscreen and no
    PYTHONPATH, as the editors' plugins run; returns the JSON it printed after "RESULT ".
    Fails the test with the output's tail when it printed none or exited non-zero."""
    import json
    import os
    import subprocess

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH="")
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])
