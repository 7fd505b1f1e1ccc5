"""`dni get` / `dni remove` against a real HTTP server on loopback: install, resume, stall,
404, wrong size, tampered file, files downloaded by hand, removal; then `dni apply` runs the
installed family and its ends are the published members."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo
from get_util import (
    Files,
    catalogue_text,
    compact_pair,
    esrgan_pair,
    http_server,
    serve_pair,
    write_catalogue,
)
from PIL import Image
from spandrel import ModelLoader

from dni import catalogue, install
from dni.cli import main
from dni.registry import user_family_dir


@pytest.fixture(autouse=True)
def _quick_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNI_DOWNLOAD_STALL_S", "0.5")
    monkeypatch.setenv("DNI_DOWNLOAD_BACKOFF_S", "0.05")


def _get(catalogue_path: Path, *args: str) -> int:
    return main(["get", *args, "--catalogue", str(catalogue_path)])


def _nothing_usable(name: str) -> None:
    """No family of that name appears, and no folder that looks like a family."""
    root = user_family_dir()
    assert not (root / name).exists()
    assert not list(root.glob("*/family.toml"))


def _expected(state: dict[str, torch.Tensor], image: np.ndarray) -> np.ndarray:
    model = ModelLoader().load_from_state_dict(state).model.eval()
    with torch.inference_mode():
        x = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None]
        out = model(x)[0].permute(1, 2, 0).numpy()
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)


def _apply(name: str, image_path: Path, strength: float, out: Path) -> np.ndarray:
    assert main(["apply", str(image_path), "-o", str(out), "--family", name,
                 "--strength", str(strength), "--device", "cpu", "--precision", "fp32"]) == 0
    with Image.open(out) as img:
        return np.asarray(img.convert("RGB"))


@pytest.mark.parametrize("make_pair", [compact_pair, esrgan_pair], ids=["compact", "rrdb"])
def test_install_then_apply_gives_the_members_at_the_ends(tmp_path, capsys, make_pair) -> None:
    pair = make_pair()
    files = Files()
    serve_pair(files, pair)
    with http_server(files) as url:
        cat = write_catalogue(tmp_path, catalogue_text(url, pair, "pair"))
        assert _get(cat, "pair") == 0
    printed = capsys.readouterr().out
    assert "installed pair" in printed and "paper eq. 3" in printed
    assert "-> correlated" in printed
    folder = user_family_dir() / "pair"
    for file, data in pair.files.items():
        assert (folder / file).read_bytes() == data  # the published form, unchanged
    assert not list(user_family_dir().glob(".*"))  # no staging left

    image = photo()[:24, :32]
    source = tmp_path / "in.png"
    Image.fromarray(image).save(source)
    members = list(pair.states.values())
    for strength, state in ((0.0, members[0]), (1.0, members[1])):
        out = _apply("pair", source, strength, tmp_path / f"out{strength}.png")
        assert out.shape == (96, 128, 3)
        assert np.abs(out.astype(int) - _expected(state, image).astype(int)).max() <= 1


def test_list_shows_licence_size_and_installed(tmp_path, capsys) -> None:
    pair = compact_pair()
    files = Files()
    serve_pair(files, pair)
    with http_server(files) as url:
        cat = write_catalogue(tmp_path, catalogue_text(url, pair, "general"))
        assert _get(cat, "--list", "--json") == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed[0]["licence"] == "BSD-3-Clause" and not listed[0]["installed"]
        assert listed[0]["size"] == sum(len(d) for d in pair.files.values())
        assert _get(cat, "general") == 0
        capsys.readouterr()
        assert _get(cat, "--list", "--json") == 0
        assert json.loads(capsys.readouterr().out)[0]["installed"]


def test_a_cut_connection_is_resumed_with_a_range_request(tmp_path) -> None:
    pair = esrgan_pair()
    files = Files(trouble={f"/{pair.name}/net.pth": "cut"})
    serve_pair(files, pair)
    with http_server(files) as url:
        assert _get(write_catalogue(tmp_path, catalogue_text(url, pair, "rrdb")), "rrdb") == 0
    ranges = [r for path, r in files.requests if path.endswith("net.pth")]
    half = (len(pair.files["net.pth"])) // 2
    assert ranges == [None, f"bytes={half}-"]
    assert (user_family_dir() / "rrdb" / "net.pth").read_bytes() == pair.files["net.pth"]


def test_a_416_restarts_the_file(tmp_path) -> None:
    pair = compact_pair()
    files = Files(trouble={f"/{pair.name}/wdn.pth": "416"})
    serve_pair(files, pair)
    root = user_family_dir()
    staging = install.staging_dir(root, "general")
    staging.mkdir(parents=True)
    # an unfinished part from an older, different file
    (staging / "wdn.pth.part").write_bytes(b"x" * 100)
    with http_server(files) as url:
        assert _get(write_catalogue(tmp_path, catalogue_text(url, pair, "general")),
                    "general") == 0
    ranges = [r for path, r in files.requests if path.endswith("wdn.pth")]
    assert ranges == ["bytes=100-", None]
    assert (root / "general" / "wdn.pth").read_bytes() == pair.files["wdn.pth"]


def test_a_stall_is_retried_and_resumed(tmp_path) -> None:
    pair = compact_pair()
    files = Files(trouble={f"/{pair.name}/x4v3.pth": "stall"}, stall_s=3.0)
    serve_pair(files, pair)
    with http_server(files) as url:
        assert _get(write_catalogue(tmp_path, catalogue_text(url, pair, "general")),
                    "general") == 0
    ranges = [r for path, r in files.requests if path.endswith("x4v3.pth")]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")


def test_a_server_that_stays_silent_aborts_the_install(tmp_path, capsys) -> None:
    pair = compact_pair()
    files = Files(trouble={f"/{pair.name}/x4v3.pth": "stall-always"}, stall_s=2.0)
    serve_pair(files, pair)
    with http_server(files) as url:
        assert _get(write_catalogue(tmp_path, catalogue_text(url, pair, "general")),
                    "general") == 1
    err = capsys.readouterr().err
    assert "x4v3.pth: could not download it" in err and "no data" in err
    assert len(err.strip().splitlines()) == 1
    _nothing_usable("general")


def test_404_is_one_clear_error(tmp_path, capsys) -> None:
    pair = compact_pair()
    files = Files(trouble={f"/{pair.name}/wdn.pth": "404"})
    serve_pair(files, pair)
    with http_server(files) as url:
        assert _get(write_catalogue(tmp_path, catalogue_text(url, pair, "general")),
                    "general") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dni: error: wdn.pth: could not download it") and "404" in err
    _nothing_usable("general")


def test_a_file_of_another_size_is_refused(tmp_path, capsys) -> None:
    pair = compact_pair()
    files = Files()
    serve_pair(files, pair)
    wrong = len(pair.files["x4v3.pth"]) + 10
    with http_server(files) as url:
        text = catalogue_text(url, pair, "general", sizes={"x4v3.pth": wrong})
        assert _get(write_catalogue(tmp_path, text), "general") == 1
    err = capsys.readouterr().err.strip()
    assert "x4v3.pth" in err and f"the catalogue says {wrong}" in err
    _nothing_usable("general")


def test_a_tampered_file_is_refused_and_nothing_usable_is_left(tmp_path, capsys) -> None:
    pair = compact_pair()
    files = Files()
    serve_pair(files, pair)
    good = hashlib.sha256(pair.files["x4v3.pth"]).hexdigest()
    tampered = bytearray(pair.files["x4v3.pth"])
    tampered[-100] ^= 0xFF
    files.content[f"/{pair.name}/x4v3.pth"] = bytes(tampered)
    with http_server(files) as url:
        assert _get(write_catalogue(tmp_path, catalogue_text(url, pair, "general")),
                    "general") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    actual = hashlib.sha256(bytes(tampered)).hexdigest()
    assert f"x4v3.pth: checksum mismatch: expected sha256 {good}, got {actual}" in err
    staging = install.staging_dir(user_family_dir(), "general")
    assert not (staging / "x4v3.pth").exists() and not (staging / "x4v3.pth.part").exists()
    _nothing_usable("general")


def test_from_files_downloaded_by_hand(tmp_path, capsys) -> None:
    pair = esrgan_pair()
    hand = tmp_path / "downloads"
    hand.mkdir()
    (hand / "net.pth").write_bytes(pair.files["net.pth"])
    # a browser may rename a file: found by its size and hash
    (hand / "gan (1).pth").write_bytes(pair.files["gan.pth"])
    text = catalogue_text("http://127.0.0.1:9", pair, "rrdb")  # never contacted
    cat = write_catalogue(tmp_path, text)
    assert _get(cat, "rrdb", "--from", str(hand)) == 0
    assert (user_family_dir() / "rrdb" / "gan.pth").read_bytes() == pair.files["gan.pth"]
    assert (hand / "gan (1).pth").exists()  # the user's files stay


def test_from_refuses_a_file_that_is_not_the_published_one(tmp_path, capsys) -> None:
    pair = compact_pair()
    hand = tmp_path / "downloads"
    hand.mkdir()
    (hand / "wdn.pth").write_bytes(pair.files["x4v3.pth"])  # same size, other file
    (hand / "x4v3.pth").write_bytes(pair.files["x4v3.pth"])
    cat = write_catalogue(tmp_path, catalogue_text("http://127.0.0.1:9", pair, "general"))
    assert _get(cat, "general", "--from", str(hand)) == 1
    assert "wdn.pth: none of the given files is it" in capsys.readouterr().err
    _nothing_usable("general")


def test_remove(tmp_path, capsys) -> None:
    pair = compact_pair()
    hand = tmp_path / "downloads"
    hand.mkdir()
    for file, data in pair.files.items():
        (hand / file).write_bytes(data)
    cat = write_catalogue(tmp_path, catalogue_text("http://127.0.0.1:9", pair, "general"))
    assert _get(cat, "general", "--from", str(hand)) == 0
    assert _get(cat, "general", "--from", str(hand)) == 1  # already installed
    assert "already installed" in capsys.readouterr().err
    assert main(["remove", "general"]) == 0
    assert not (user_family_dir() / "general").exists()
    assert main(["remove", "general"]) == 1
    assert "not installed" in capsys.readouterr().err
    assert main(["remove", "denoise"]) == 1  # a bundled family is not ours to delete


def test_the_environment_variable_names_the_catalogue(tmp_path, monkeypatch, capsys) -> None:
    pair = compact_pair()
    cat = write_catalogue(tmp_path, catalogue_text("http://127.0.0.1:9", pair, "mirrored"))
    monkeypatch.setenv("DNI_CATALOGUE", str(cat))
    assert main(["get", "--list"]) == 0
    assert capsys.readouterr().out.startswith("mirrored")
    assert main(["get", "nonesuch"]) == 1
    assert "no family 'nonesuch' (it offers: mirrored)" in capsys.readouterr().err


def test_the_built_in_catalogue_is_complete_and_its_manifests_load(tmp_path) -> None:
    from dni.manifest import load_manifest

    entries = catalogue.load(catalogue.builtin_path())
    names = {e.name for e in entries}
    assert {"realesr-general", "realesrgan-x4plus", "esrgan"} <= names
    for entry in entries:
        folder = tmp_path / entry.name
        folder.mkdir()
        (folder / "family.toml").write_text(entry.manifest_text(), encoding="utf-8")
        manifest = load_manifest(folder)
        assert manifest.architecture == "auto" and manifest.scale == 4
        assert all(d.urls[0].startswith("https://") for d in entry.downloads)
        assert entry.licence and entry.homepage.startswith("https://")
    general = catalogue.find(entries, "realesr-general")
    # Real-ESRGAN's denoise strength: 0 keeps the noise (wdn), 1 is x4v3
    assert [d.file for d in general.downloads] == ["realesr-general-wdn-x4v3.pth",
                                                    "realesr-general-x4v3.pth"]


@pytest.mark.parametrize("broken, message", [
    ('[[families]]\nname = "x"\n', "at least two"),
    ("families = 3\n", "list of [[families]]"),
    ("not toml [", "not a readable TOML"),
])
def test_a_broken_catalogue_is_one_clear_error(tmp_path, capsys, broken, message) -> None:
    cat = write_catalogue(tmp_path, broken)
    assert _get(cat, "--list") == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_catalogue_entry_without_a_hash_is_refused(tmp_path, capsys) -> None:
    pair = compact_pair()
    text = catalogue_text("http://127.0.0.1:9", pair, "general").replace(
        'sha256 = "', 'sha = "', 1)
    assert _get(write_catalogue(tmp_path, text), "--list") == 1
    assert "'sha256' must be 64 hexadecimal digits" in capsys.readouterr().err


def test_a_catalogue_manifest_that_would_not_load_is_refused_before_any_download(
        tmp_path, capsys) -> None:
    pair = compact_pair()
    files = Files()
    serve_pair(files, pair)
    with http_server(files) as url:
        text = catalogue_text(url, pair, "general").replace('task = "super-resolve"',
                                                            'task = "paint-by-numbers"')
        assert _get(write_catalogue(tmp_path, text), "general") == 1
    assert "task 'paint-by-numbers' is not one of" in capsys.readouterr().err
    assert files.requests == []
    assert not user_family_dir().exists() or not list(user_family_dir().iterdir())


def test_too_little_disk_space_is_said_before_downloading(tmp_path, monkeypatch,
                                                          capsys) -> None:
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("dni.download.shutil.disk_usage",
                        lambda _path: usage(2**30, 2**30 - 2**20, 2**20))
    pair = compact_pair()
    files = Files()
    serve_pair(files, pair)
    with http_server(files) as url:
        assert _get(write_catalogue(tmp_path, catalogue_text(url, pair, "general")),
                    "general") == 1
    assert "not enough disk space" in capsys.readouterr().err
    assert files.requests == []
