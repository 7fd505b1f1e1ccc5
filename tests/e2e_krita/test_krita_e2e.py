"""End to end in the real Krita: installer -> Krita under Xvfb -> plugin -> `dni serve`.

The installer puts the plugin into a temporary HOME (pyzmq vendored offline from this
venv: Debian's Krita runs Python 3.11 like the venv) and records the backend command and a
free loopback port. Krita starts with a clean environment (no venv on PATH, no PYTHONPATH)
and with a small test plugin (krita_checks.py) that drives dni_krita; the plugin itself
starts `dni serve` (so the launcher is tested too) and that backend must be gone once
Krita has quit. Skips when krita or xvfb-run is missing (`apt-get install -y krita xvfb
xauth`). Set DNI_UPDATE_SCREENSHOT=1 to copy the dialog screenshot to docs/images/.

Families: the bundled "denoise" (and "super-resolve") when all their member files are
present; otherwise stand-ins built here: "box-denoise", a plain-conv family whose three
members are fixed filters (identity, one 3x3 box blur, two 3x3 box blurs: stronger
smoothing = stronger denoising), and "tiny-x4", a scale-4 plain-conv family.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import krita_pyzmq_option
from get_util import Files, catalogue_text, compact_pair, http_server, serve_pair, write_catalogue

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("krita", "xvfb-run", "xauth")),
    reason="needs Debian's krita, xvfb-run and xauth (apt-get install -y krita xvfb xauth)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bundled(name: str) -> bool:
    """True when models/<name> has a manifest and every member file it names."""
    manifest = ROOT / "models" / name / "family.toml"
    if not manifest.exists():
        return False
    files = re.findall(r'^\s*file\s*=\s*"([^"]+)"', manifest.read_text(), re.M)
    return bool(files) and all((manifest.parent / f).exists() for f in files)


def _box_denoise(root: Path) -> None:
    from conftest import write_family

    options = {"features": 3, "layers": 2, "residual": False}
    ident = torch.zeros(3, 3, 3, 3)
    box = torch.zeros(3, 3, 3, 3)
    for c in range(3):
        ident[c, c, 1, 1] = 1.0
        box[c, c] = 1.0 / 9.0
    zero = torch.zeros(3)

    def state(first: torch.Tensor, second: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"body.0.weight": first.clone(), "body.0.bias": zero.clone(),
                "body.2.weight": second.clone(), "body.2.bias": zero.clone()}

    write_family(root, "box-denoise", [state(ident, ident), state(box, ident), state(box, box)],
                 options=options, positions=[15, 25, 50], task="denoise")


def _families(root: Path) -> dict[str, str]:
    from conftest import TINY, correlated_states, make_families, write_family

    make_families(root)  # tiny, tiny3, tiny-x2, identity
    conf = {}
    if _bundled("denoise"):
        conf["denoise"] = "denoise"
    else:
        _box_denoise(root)
        conf["denoise"] = "box-denoise"
    if _bundled("super-resolve"):
        conf["super_resolve"] = "super-resolve"
    else:
        x4 = dict(TINY, scale=4)
        write_family(root, "tiny-x4", correlated_states(x4, 2, seed=9), options=x4, scale=4,
                     task="super-resolve")
        conf["super_resolve"] = "tiny-x4"
    return conf


def _noisy_photo(path: Path) -> Path:
    """A NASA photo (tests/data) with Gaussian noise, sigma 25: what the dialog shows."""
    import numpy as np
    from conftest import photo
    from PIL import Image

    rng = np.random.default_rng(3)
    img = photo("rocket-small.png").astype(np.float32)
    noisy = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(path)
    return path


def _clean_env(home: Path, out: Path, conf: dict[str, str],
               extra: dict[str, str] | None = None) -> dict[str, str]:
    """What a user's desktop session would give Krita: no venv, no PYTHONPATH."""
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "XDG_RUNTIME_DIR": str(home / "runtime"), "DNI_E2E_OUT": str(out),
           "DNI_E2E_CONF": json.dumps(conf), "QT_LOGGING_RULES": "*.debug=false",
           **(extra or {})}
    (home / "runtime").mkdir(mode=0o700, exist_ok=True)
    return env


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def run_krita(tmp_path: Path, conf: dict, krita_timeout: int = 420,
              env: dict[str, str] | None = None) -> dict:
    """Install the plugin into a temporary HOME, add the test plugin, run Krita under
    Xvfb with a clean environment; returns what the test plugin wrote (results.json)
    plus "_proc", "_elapsed", "_port" and "_out". Used by the test and by
    benchmarks/bench_krita_preview.py."""
    home = tmp_path / "home"
    out = tmp_path / "out"
    families = tmp_path / "families"
    home.mkdir()
    conf = {**_families(families), **conf}
    conf["photo"] = str(_noisy_photo(tmp_path / "noisy-rocket.png"))
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"

    # 1. The installer, into the temporary HOME.
    backend = VENV_BIN / "dni"
    subprocess.run([sys.executable, str(ROOT / "installers" / "install_krita_plugin.py"),
                    "--home", str(home), *krita_pyzmq_option(), "--backend", str(backend),
                    "--family-path", str(families), "--endpoint", endpoint],
                   check=True, timeout=120)
    pykrita = home / ".local" / "share" / "krita" / "pykrita"
    assert (pykrita / "dni_krita" / "_vendor").is_dir()
    recorded = json.loads((pykrita / "dni_krita" / "backend.json").read_text())
    assert recorded["endpoint"] == endpoint and recorded["command"]
    kritarc = home / ".config" / "kritarc"
    assert "enable_dni_krita=true" in kritarc.read_text()

    # 2. The small test plugin that drives dni_krita inside Krita.
    (pykrita / "dni_e2e").mkdir()
    shutil.copy(HERE / "krita_checks.py", pykrita / "dni_e2e" / "__init__.py")
    (pykrita / "dni_e2e.desktop").write_text(
        "[Desktop Entry]\nType=Service\nServiceTypes=Krita/PythonPlugin\n"
        "X-KDE-Library=dni_e2e\nX-Python-2-Compatible=false\nName=DNI e2e checks\n"
        "Comment=test driver\n")
    with kritarc.open("a") as f:
        f.write("enable_dni_e2e=true\n")  # the installer left [python] last
    assert kritarc.read_text().strip().endswith("enable_dni_e2e=true")

    # 3. Krita under Xvfb with a clean environment.
    assert not _port_open(port)
    start = time.monotonic()
    for _attempt in range(2):  # xvfb-run -a can lose a race for a display number
        proc = subprocess.run(
            ["timeout", str(krita_timeout), "xvfb-run", "-a", "-s", "-screen 0 1920x1080x24",
             "krita", "--nosplash"], env=_clean_env(home, out, conf, env), capture_output=True,
            text=True, timeout=krita_timeout + 10)
        if "Xvfb failed to start" not in proc.stderr:
            break
    elapsed = time.monotonic() - start
    out.mkdir(exist_ok=True)
    (out / "krita-stderr.log").write_text(proc.stderr)  # for debugging a failure
    results_file = out / "results.json"
    assert results_file.exists(), (
        f"the test plugin wrote nothing (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    results = json.loads(results_file.read_text())
    results.update(_proc=proc, _elapsed=elapsed, _port=port, _out=out)
    return results


def test_krita_end_to_end(tmp_path: Path) -> None:
    conf: dict = {}
    if os.environ.get("DNI_E2E_SKIP"):
        conf["skip"] = os.environ["DNI_E2E_SKIP"].split(",")
    only = os.environ.get("DNI_E2E_ONLY")  # developers: run some parts only
    if only:
        conf["only"] = only.split(",")
    # Get more families…: a catalogue of one family, served on loopback (a real HTTP
    # server, real downloads, checksums checked by the backend Krita starts).
    pair = compact_pair()
    files = Files()
    serve_pair(files, pair)
    with http_server(files) as url:
        catalogue = write_catalogue(tmp_path, catalogue_text(url, pair, "general"))
        results = run_krita(tmp_path, conf, env={"DNI_CATALOGUE": str(catalogue)})
    proc, elapsed, port, out = (results[k] for k in ("_proc", "_elapsed", "_port", "_out"))
    log = "\n".join(results.get("log", []))
    assert "error" not in results, results["error"] + "\n" + log
    assert not results.get("unexpected_boxes"), f"{results['unexpected_boxes']}\n{log}"
    assert results.get("finished"), f"{log}\nexit {proc.returncode}\n{proc.stderr[-3000:]}"
    failed = {k: v for k, v in results["checks"].items() if not v["ok"]}
    assert not failed, f"{failed}\n{log}"
    expected = {"plugin_loaded", "backend_started_by_plugin", "denoise_lowers_noise",
                "source_unchanged", "new_layer_above_source", "selection_limits_result",
                "source_unchanged_after_selection", "strength_map_varies_strength",
                "depth_U8_identity_exact", "depth_U16_identity_exact",
                "depth_F16_identity_exact", "depth_F32_identity_exact",
                "super_resolve_new_document_4x", "super_resolve_resize_4x",
                "super_resolve_resize_is_one_undo_step",
                "group_layer_refused", "dialog_preview_follows_slider", "dialog_screenshot",
                "filter_menu_has_dni_entries", "dni_docker_registered", "replace_is_one_undo_step",
                "backend_gone_mid_job_reported", "backend_restarted_after_death",
                "dialog_apply_adds_a_layer", "dialog_mixer_keeps_weights_convex",
                "docker_rerun_replaces_last_result", "cancel_leaves_document_unchanged",
                "filter_menu_lists_other_families",
                "preview_follows_active_view_of_zoomed_second_document",
                "canvas_preview_on_off_leaves_no_layer",
                "preview_every_depth_without_long_freeze",
                "reedit_dni_layer_in_place_one_undo_step",
                "docker_rerun_keeps_n_way_mix", "apply_right_after_backend_crash",
                "port_change_restarts_backend", "get_more_families_installs_one"}
    if not only:
        assert expected <= set(results["checks"]), sorted(expected - set(results["checks"]))
    assert proc.returncode == 0, f"Krita exit {proc.returncode} (file_quit should give 0)"

    # 4. The backend Krita started is gone with Krita.
    deadline = time.monotonic() + 10
    while _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _port_open(port), "the backend outlived Krita"
    new_port = results.get("new_port")  # the port DNI Settings moved the backend to
    while new_port and _port_open(new_port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (new_port and _port_open(new_port)), "the moved backend outlived Krita"

    if only:
        return
    shot = out / "krita-dialog.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    if os.environ.get("DNI_UPDATE_SCREENSHOT"):
        target = ROOT / "docs" / "images" / "krita-dialog.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target)
    print(f"krita e2e: {elapsed:.0f} s; " + "; ".join(
        f"{k}={ {x: y for x, y in v.items() if x != 'ok'} }" for k, v in
        results["checks"].items()))
    assert elapsed < 430
