"""Where and how `dni` writes: problems found before the work, formats that cannot hold
the result said up front, unfinished files that can be found and are cleaned up, the
permissions and links of a normal file."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import photo
from PIL import Image

from dni.cli import main

DNI = [sys.executable, "-m", "dni.cli"]
UNFINISHED = ".dni-unfinished-"


@pytest.fixture()
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(photo()).save(path)
    return path


def apply(src: Path, out: Path, family_dir: Path, family: str = "identity") -> int:
    return main(["apply", str(src), "-o", str(out), "--family", family, "--strength", "0",
                 "--family-path", str(family_dir)])


def unfinished(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if UNFINISHED in p.name)


# -- found before the work ------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (Path.mkdir, "is a folder; give the output file's name"),
    (os.mkfifo, "exists and is not a regular file"),
    (None, "output folder does not exist"),
])
def test_output_problems_come_before_the_work(tiny_family_dir, image_file, tmp_path, capsys,
                                              make, message) -> None:
    out = tmp_path / "out.png"
    if make is None:
        out = tmp_path / "missing" / "out.png"
    else:
        make(out)
    # An unknown family would be the first thing the work finds: the output comes first.
    assert apply(image_file, out, tiny_family_dir, family="nope") == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert unfinished(tmp_path) == []


def test_a_read_only_folder_is_refused_before_the_work(tmp_path) -> None:
    """Run as an unprivileged user where the tests run as root (root may write anyway)."""
    as_user: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop privileges")
        as_user = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    shared = Path(tempfile.mkdtemp())  # reachable by that user, unlike pytest's tmp_path
    try:
        shared.chmod(0o755)
        src, folder = shared / "in.png", shared / "read-only"
        Image.fromarray(photo()).save(src)
        src.chmod(0o644)
        folder.mkdir(mode=0o555)
        result = subprocess.run(as_user + DNI + [
            "apply", str(src), "-o", str(folder / "out.png"), "--family", "nope",
            "--strength", "0.5"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        assert result.stderr == f"dni: error: {folder}: cannot write in this folder " \
                                "(Permission denied)\n"
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)
        shutil.rmtree(shared)


# -- formats that cannot hold the result: said before the work, then converted right ----------

@pytest.mark.parametrize("suffix, tolerance", [(".bmp", 0), (".jpg", 1), (".webp", 1)])
def test_16_bit_grey_to_an_8_bit_format(tiny_family_dir, tmp_path, capsys, suffix,
                                        tolerance) -> None:
    src, out = tmp_path / "grey16.png", tmp_path / f"out{suffix}"
    Image.fromarray(np.full((16, 24), 128 * 257, np.uint16)).save(src)  # 50 % grey
    assert apply(src, out, tiny_family_dir, family="nope") == 1  # said before the work
    warning, error = capsys.readouterr().err.splitlines()
    assert "cannot keep these 16-bit samples; writing 8-bit (.png or .tif keeps them)" in warning
    assert "unknown family 'nope'" in error
    assert apply(src, out, tiny_family_dir) == 0
    result = np.asarray(Image.open(out).convert("L")).astype(int)
    assert np.abs(result - 128).max() <= tolerance  # scaled, not clipped at 255


@pytest.mark.parametrize("suffix", [".bmp", ".jpg"])
def test_alpha_into_a_format_without_alpha_is_said(tiny_family_dir, tmp_path, capsys,
                                                   suffix) -> None:
    rgba = np.dstack([photo(), np.full(photo().shape[:2], 100, np.uint8)])
    src, out = tmp_path / "rgba.png", tmp_path / f"out{suffix}"
    Image.fromarray(rgba).save(src)
    assert apply(src, out, tiny_family_dir) == 0
    assert "has no alpha channel; the transparency is dropped" in capsys.readouterr().err
    with Image.open(out) as img:
        assert img.mode == "RGB"
        if suffix == ".bmp":
            assert np.array_equal(np.asarray(img), photo())


def test_alpha_is_kept_where_the_format_has_it(tiny_family_dir, tmp_path, capsys) -> None:
    rgba = np.dstack([photo(), np.full(photo().shape[:2], 100, np.uint8)])
    src = tmp_path / "rgba.png"
    Image.fromarray(rgba).save(src)
    for suffix in (".png", ".tif", ".webp"):
        out = tmp_path / f"out{suffix}"
        assert apply(src, out, tiny_family_dir) == 0
        with Image.open(out) as img:
            assert img.mode == "RGBA" and np.all(np.asarray(img)[..., 3] == 100)
    assert "warning" not in capsys.readouterr().err


# -- unfinished files -------------------------------------------------------------------------

def start_long_apply(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """A real `dni apply` of the bundled denoiser, once it has reserved its output."""
    src, out = tmp_path / "big.png", tmp_path / "out.png"
    Image.fromarray(np.tile(photo(), (8, 8, 1))).save(src)  # 1024x1024: seconds of work
    proc = subprocess.Popen(DNI + ["apply", str(src), "-o", str(out), "--family", "denoise",
                                   "--strength", "0.5", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not unfinished(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # waiting for the file to appear, not timing anything
    assert unfinished(tmp_path), "no unfinished output appeared"
    return proc, out


def test_a_killed_run_leaves_a_visible_file_that_the_next_run_removes(tiny_family_dir,
                                                                      image_file,
                                                                      tmp_path) -> None:
    proc, out = start_long_apply(tmp_path)
    proc.kill()  # SIGKILL cannot be caught
    proc.communicate()
    left = unfinished(tmp_path)
    assert left == [f"out.png{UNFINISHED}{proc.pid}-{left[0].rsplit('-', 1)[1]}"]
    assert not left[0].startswith(".")  # a hidden file would never be found
    assert apply(image_file, out, tiny_family_dir) == 0
    assert unfinished(tmp_path) == [] and out.is_file()


def test_sigterm_removes_the_unfinished_file(tmp_path) -> None:
    proc, out = start_long_apply(tmp_path)
    proc.terminate()
    _stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.endswith("dni: terminated; nothing was written\n")
    assert unfinished(tmp_path) == [] and not out.exists()


# -- a normal file ----------------------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_outputs_get_the_umask_permissions(tiny_family_dir, image_file, tmp_path, umask,
                                           mode) -> None:
    out = tmp_path / "out.png"
    previous = os.umask(umask)
    try:
        assert apply(image_file, out, tiny_family_dir) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_a_replaced_output_keeps_its_permissions(tiny_family_dir, image_file,
                                                 tmp_path) -> None:
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    out.chmod(0o604)
    assert apply(image_file, out, tiny_family_dir) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o604 and out.stat().st_size > 3


@pytest.mark.parametrize("existing", [True, False])
def test_a_symlinked_output_is_written_through(tiny_family_dir, image_file, tmp_path,
                                               existing) -> None:
    (tmp_path / "real").mkdir()
    target, link = tmp_path / "real" / "target.png", tmp_path / "link.png"
    if existing:
        target.write_bytes(b"old")
    link.symlink_to(target)
    assert apply(image_file, link, tiny_family_dir) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert np.array_equal(np.asarray(Image.open(target)), photo())
    assert unfinished(tmp_path) == [] and unfinished(tmp_path / "real") == []
