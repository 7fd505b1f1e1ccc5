"""`--server`: `dni apply`, `dni sweep` and `dni families` through a real `dni serve` on
loopback, and the error codes the server gives for bad families and amounts."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, correlated_states, photo
from PIL import Image
from safetensors.torch import save_file
from test_server_util import Process, serve

from dni.cli import main
from dni_client import ServerError, ZmqClient


def _variant(root: Path, source: Path, name: str) -> Path:
    folder = root / name
    shutil.copytree(source, folder)
    toml = folder / "family.toml"
    toml.write_text(toml.read_text().replace('name = "tiny"', f'name = "{name}"'))
    return folder


def _broken_families(root: Path, tiny: Path) -> None:
    """Families whose manifests are fine but whose weights are not."""
    folder = _variant(root, tiny, "wrong-shape")
    for member in ("m0", "m1"):
        state = correlated_states(TINY, 1)[0]
        state["body.0.weight"] = torch.zeros(8, 3, 5, 5)
        save_file(state, str(folder / f"{member}.safetensors"))
    folder = _variant(root, tiny, "nan-weights")
    state = correlated_states(TINY, 1)[0]
    state["body.0.bias"][0] = float("nan")
    save_file(state, str(folder / "m1.safetensors"))
    folder = _variant(root, tiny, "huge-options")
    toml = folder / "family.toml"
    toml.write_text(toml.read_text().replace("features = 8", "features = 1000000000"))
    folder = _variant(root, tiny, "zip-bomb")
    torch.save({"w": torch.zeros(16 * 2**20)}, str(folder / "plain.pth"))
    with zipfile.ZipFile(folder / "plain.pth") as old, \
            zipfile.ZipFile(folder / "m1.pth", "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info.filename, old.read(info.filename))
    (folder / "plain.pth").unlink()
    toml = folder / "family.toml"
    toml.write_text(toml.read_text().replace('"m1.safetensors"', '"m1.pth"'))


@pytest.fixture(scope="module")
def families(tiny_family_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("remote-families")
    for name in ("tiny", "tiny3", "identity"):
        shutil.copytree(tiny_family_dir / name, root / name)
    _broken_families(root, tiny_family_dir / "tiny")
    return root


@pytest.fixture(scope="module")
def server(families: Path) -> Iterator[Process]:
    with serve(families) as process:
        yield process


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(np.dstack([photo(), np.full(photo().shape[:2], 180, np.uint8)])).save(path)
    return path


def test_apply_through_the_server_matches_in_process(server, families, src, tmp_path,
                                                     capsys) -> None:
    mask = tmp_path / "mask.png"
    m = np.zeros(photo().shape[:2], np.uint8)
    m[20:100, 30:] = 255
    Image.fromarray(m).save(mask)
    common = ["--family", "tiny", "--strength", "0.6", "--mask", str(mask),
              "--family-path", str(families)]
    local, remote = tmp_path / "local.png", tmp_path / "remote.png"
    assert main(["apply", str(src), "-o", str(local), *common]) == 0
    assert main(["apply", str(src), "-o", str(remote), "--server", server.endpoint,
                 *common]) == 0
    assert main(["apply", str(src), "-o", str(tmp_path / "x.png"), "--server",
                 server.endpoint, "--family", "nope", "--strength", "0.5"]) == 1
    assert "no family 'nope'" in capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(remote)), np.asarray(Image.open(local)))
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("amount, message", [
    (["--strength", "nan"], "strength must be a number between 0 and 1, not nan"),
    (["--strength", "inf"], "strength must be a number between 0 and 1, not inf"),
    (["--strength", "1" + "0" * 400], "strength must be a number between 0 and 1"),
    (["--weights", "nan,1"], "every weight must be a finite number"),
    (["--weights", "0.5,0.25,0.25"], "this family has 2 members"),
])
def test_bad_amounts_are_one_line_before_the_job(server, src, tmp_path, capsys, amount,
                                                 message) -> None:
    out = tmp_path / "out.png"
    assert main(["apply", str(src), "-o", str(out), "--server", server.endpoint,
                 "--family", "tiny", *amount]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dni: error: ") and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_families_over_the_server(server, tiny_family_dir, capsys) -> None:
    assert main(["families", "--server", server.endpoint, "--json"]) == 0
    listed = {f["name"]: f for f in json.loads(capsys.readouterr().out)}
    assert listed["tiny3"]["members"][0]["position"] == 15
    assert main(["families", "--server", server.endpoint]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[0] == "tiny" and "low end -> high end" in line for line in lines)


def test_sweep_over_the_server_matches_in_process(server, families, src, tmp_path) -> None:
    local, remote = tmp_path / "local.png", tmp_path / "remote.png"
    common = ["--family", "tiny", "--steps", "3", "--compare-pixel"]
    assert main(["sweep", str(src), "-o", str(local), *common, "--family-path",
                 str(families)]) == 0
    assert main(["sweep", str(src), "-o", str(remote), *common, "--server",
                 server.endpoint]) == 0
    assert np.array_equal(np.asarray(Image.open(remote)), np.asarray(Image.open(local)))


@pytest.mark.parametrize("family, code, message", [
    ("wrong-shape", "bad_family", "m0.safetensors: the weights do not fit"),
    ("nan-weights", "bad_family", "m1.safetensors: tensor 'body.0.bias' holds NaN"),
    ("huge-options", "bad_family", "'features' must be from 1 to 1024"),
    ("zip-bomb", "bad_family", "m1.pth: this checkpoint would expand"),
])
def test_broken_families_are_bad_family_not_internal(server, family, code, message) -> None:
    with ZmqClient(server.endpoint) as client, pytest.raises(ServerError) as caught:
        client.run(family, 8, 8, "rgb8", bytes(8 * 8 * 3), strength=0.5)
    assert caught.value.code == code and message in caught.value.message


def test_small_images_and_strength_maps_over_the_server(server) -> None:
    with ZmqClient(server.endpoint) as client:
        for width, height in ((4, 4), (1, 1), (3, 2)):  # the bundled stylize net
            result = client.run("stylize", width, height, "rgb8", bytes(width * height * 3),
                                strength=0.5)
            assert (result.width, result.height) == (width, height)
        with pytest.raises(ServerError) as caught:
            client.run("tiny", 8, 8, "rgb8", bytes(8 * 8 * 3), strength=0.5,
                       strength_map=bytes(64))
    assert caught.value.code == "bad_weights"
    assert "strength map sets the strength pixel by pixel" in caught.value.message
