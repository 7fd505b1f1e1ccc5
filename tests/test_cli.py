"""The `dni` command, run as a user runs it (a real subprocess for the main paths)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, photo
from PIL import Image
from safetensors.torch import load_file

from dni.cli import main

DNI = [sys.executable, "-m", "dni.cli"]


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(DNI + args, capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture()
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(photo()).save(path)
    return path


def test_families_lists_names_and_json(tiny_family_dir) -> None:
    result = run(["families", "--json", "--family-path", str(tiny_family_dir)])
    assert result.returncode == 0, result.stderr
    listed = {f["name"]: f for f in json.loads(result.stdout)}
    assert listed["tiny3"]["members"][0]["position"] == 15
    assert listed["tiny"]["presets"] == [{"name": "Half", "strength": 0.5}]
    text = run(["families", "--family-path", str(tiny_family_dir)])
    assert "tiny-x2" in text.stdout and "x2" in text.stdout


def test_apply_writes_the_filtered_image(tiny_family_dir, image_file, tmp_path) -> None:
    out = tmp_path / "out.png"
    result = run(["apply", str(image_file), "-o", str(out), "--family", "tiny", "--strength",
                  "0.3", "--family-path", str(tiny_family_dir), "--device", "cpu"])
    assert result.returncode == 0, result.stderr
    import dni

    expected = dni.load_family(tiny_family_dir / "tiny").apply(photo(), strength=0.3)
    assert np.array_equal(np.asarray(Image.open(out)), expected)
    assert result.stderr == ""  # no progress bar when not on a terminal


def test_apply_with_preset_mask_and_strength_map(tiny_family_dir, image_file, tmp_path) -> None:
    mask = tmp_path / "mask.png"
    m = np.zeros(photo().shape[:2], np.uint8)
    m[:, 64:] = 255
    Image.fromarray(m).save(mask)
    out = tmp_path / "out.png"
    assert main(["apply", str(image_file), "-o", str(out), "--family", "tiny", "--preset", "half",
                 "--mask", str(mask), "--family-path", str(tiny_family_dir)]) == 0
    result = np.asarray(Image.open(out))
    assert np.array_equal(result[:, :64], photo()[:, :64])
    assert not np.array_equal(result[:, 64:], photo()[:, 64:])
    out2 = tmp_path / "out2.png"
    assert main(["apply", str(image_file), "-o", str(out2), "--family", "tiny",
                 "--strength-map", str(mask), "--family-path", str(tiny_family_dir)]) == 0


@pytest.mark.parametrize("extra, message", [
    (["--family", "nope", "--strength", "0.5"], "unknown family 'nope'"),
    (["--family", "tiny", "--strength", "1.5"], "between 0 and 1"),
    (["--family", "tiny", "--weights", "0.6,0.6"], "sum to 1"),
    (["--family", "tiny", "--weights=-0.5,1.5"], "negative"),
    (["--family", "tiny", "--weights", "nan,1"], "finite"),
    (["--family", "tiny"], "say how strong"),
    (["--family", "tiny", "--preset", "Loud"], "no preset named 'Loud'"),
])
def test_bad_input_one_line_nothing_written(tiny_family_dir, image_file, tmp_path, capsys,
                                            extra, message) -> None:
    out = tmp_path / "out.png"
    code = main(["apply", str(image_file), "-o", str(out), "--family-path",
                 str(tiny_family_dir), *extra])
    err = capsys.readouterr().err
    assert code == 1 and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == [image_file]  # nothing half-written


def test_bad_files(tiny_family_dir, tmp_path, capsys) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    args = ["--family", "tiny", "--strength", "0.5", "--family-path", str(tiny_family_dir)]
    assert main(["apply", str(corrupt), "-o", str(tmp_path / "o.png"), *args]) == 1
    assert "cannot read this image" in capsys.readouterr().err
    assert main(["apply", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png"),
                 *args]) == 1
    assert "no such file" in capsys.readouterr().err
    good = DATA / "astronaut-crop.png"
    small_mask = tmp_path / "m.png"
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(small_mask)
    assert main(["apply", str(good), "-o", str(tmp_path / "o.png"), "--mask", str(small_mask),
                 *args]) == 1
    assert "mask is 5x5" in capsys.readouterr().err
    assert main(["apply", str(good), "-o", str(tmp_path / "o.png"), "--max-pixels", "100",
                 *args]) == 1
    assert "over the limit" in capsys.readouterr().err
    assert main(["apply", str(good), "-o", str(tmp_path / "o.xyz"), *args]) == 1
    assert "unknown output format" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_inspect_verdict_and_exit_status(tiny_family_dir, tmp_path) -> None:
    from conftest import TINY, correlated_states
    from safetensors.torch import save_file

    a, b = (tiny_family_dir / "tiny" / f"m{i}.safetensors" for i in range(2))
    result = run(["inspect", str(a), str(b)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: correlated" in result.stdout
    unrelated = tmp_path / "unrelated.safetensors"
    save_file(correlated_states(TINY, 1, seed=99)[0], str(unrelated))
    result = run(["inspect", str(a), str(unrelated), "--json"])
    report = json.loads(result.stdout)
    assert report["verdict"] in ("uncorrelated", "weak") and result.returncode in (3, 4)
    family = run(["inspect", "--family", "tiny3", "--family-path", str(tiny_family_dir)])
    assert family.returncode == 0 and family.stdout.count("median") >= 2
    other = tiny_family_dir / "tiny-x2" / "m0.safetensors"
    mismatch = run(["inspect", str(a), str(other)])
    assert mismatch.returncode == 1 and "body.4.bias" in mismatch.stderr


def test_mix_exports_an_interpolated_checkpoint(tiny_family_dir, tmp_path) -> None:
    a, b = (tiny_family_dir / "tiny" / f"m{i}.safetensors" for i in range(2))
    out = tmp_path / "mixed.safetensors"
    assert main(["mix", str(a), str(b), "--weights", "0.25,0.75", "-o", str(out)]) == 0
    mixed, sa, sb = load_file(str(out)), load_file(str(a)), load_file(str(b))
    for key in sa:
        np.testing.assert_allclose(mixed[key].numpy(), 0.25 * sa[key].numpy()
                                   + 0.75 * sb[key].numpy(), rtol=1e-5, atol=1e-6)
    bad = tmp_path / "x.safetensors"
    assert main(["mix", str(a), str(b), "--weights", "0.5,0.6", "-o", str(bad)]) == 1
    assert not bad.exists()


def test_sweep_contact_sheet(tiny_family_dir, image_file, tmp_path) -> None:
    out = tmp_path / "sheet.png"
    assert main(["sweep", str(image_file), "-o", str(out), "--family", "tiny", "--steps", "4",
                 "--compare-pixel", "--family-path", str(tiny_family_dir)]) == 0
    sheet = Image.open(out)
    assert sheet.width > 4 * 128 and sheet.height > 2 * 128


def test_families_skips_broken_families_with_one_warning_each(tiny_family_dir, tmp_path) -> None:
    import shutil

    for name in ("gone", "damaged", "nameless"):
        folder = tmp_path / name
        shutil.copytree(tiny_family_dir / "tiny", folder)
        toml = folder / "family.toml"
        toml.write_text(toml.read_text().replace('name = "tiny"', f'name = "{name}"'))
    (tmp_path / "gone" / "m1.safetensors").unlink()
    (tmp_path / "damaged" / "m0.safetensors").write_bytes(b"<html>404 not found</html>")
    toml = tmp_path / "nameless" / "family.toml"
    toml.write_text(toml.read_text().replace('name = "nameless"\n', ""))
    result = run(["families", "--family-path", str(tmp_path)])
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert "gone" not in listed and "damaged" not in listed and "nameless" not in listed
    warnings = result.stderr.splitlines()
    assert len(warnings) == 3
    assert all(w.startswith("dni: warning: skipped a broken family (not listed, cannot be "
                            "used): ") for w in warnings)
    for problem in ("family 'gone': member 'member 1': m1.safetensors is missing",
                    "family 'damaged': member 'member 0': m0.safetensors is not a weight file",
                    "nameless/family.toml: missing required field 'name'"):
        assert sum(problem in w for w in warnings) == 1, problem
    as_json = run(["families", "--json", "--family-path", str(tmp_path)])
    assert {f["name"] for f in json.loads(as_json.stdout)}.isdisjoint({"gone", "damaged"})


@pytest.mark.parametrize("amount", [["--strength", "0.3"], ["--weights", "0.5,0.5"],
                                    ["--preset", "Half"]])
def test_a_strength_map_with_another_amount_is_refused(tiny_family_dir, image_file, tmp_path,
                                                       capsys, amount) -> None:
    smap = tmp_path / "map.png"
    Image.fromarray(np.full(photo().shape[:2], 200, np.uint8)).save(smap)
    out = tmp_path / "out.png"
    assert main(["apply", str(image_file), "-o", str(out), "--family", "tiny",
                 "--strength-map", str(smap), *amount, "--family-path",
                 str(tiny_family_dir)]) == 1
    err = capsys.readouterr().err
    assert err == f"dni: error: --strength-map sets the strength pixel by pixel; leave out " \
                  f"{amount[0]}\n"
    assert not out.exists()
