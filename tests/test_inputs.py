"""Hostile and unusual input files for `dni apply`: decompression bombs, animations,
16-bit and float files, broken weights and manifests. Each gives one clear error (or keeps
its data), never a traceback, a silent change or gigabytes of memory."""

from __future__ import annotations

import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import IDENTITY, TINY, correlated_states, photo
from PIL import Image
from safetensors.torch import save_file

import dni
from dni.cli import main
from dni.errors import FamilyError, WeightsError
from dni.imagefiles import read_image

DNI = [sys.executable, "-m", "dni.cli"]
BOMB_SIDE = 25000


def png_bytes(width: int, height: int, depth: int, colour_type: int, rows: list[bytes]) -> bytes:
    """A PNG written by hand (filter 0 on every row), as any encoder may write it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(b"\0" + row) for row in rows) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))


def write_png16(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit grey, RGB or RGBA PNG (Pillow cannot write colour ones)."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = [row.astype(">u2").tobytes() for row in pixels.reshape(pixels.shape[0], -1)]
    path.write_bytes(png_bytes(pixels.shape[1], pixels.shape[0], 16,
                               {1: 0, 3: 2, 4: 6}[channels], rows))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def read_png16(path: Path) -> np.ndarray:
    """A 16-bit PNG's samples as stored, decoded here in plain Python (Pillow would cut
    colour ones to 8 bits): chunks, zlib, then the five row filters of the PNG spec."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, {b"IHDR": b"", b"IDAT": b""}
    while at < len(data):
        (length,), kind = struct.unpack(">I", data[at:at + 4]), data[at + 4:at + 8]
        if kind in chunks:
            chunks[kind] += data[at + 8:at + 8 + length]
        at += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 16
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    bpp, stride = 2 * channels, 2 * channels * width
    raw, rows, above = zlib.decompress(chunks[b"IDAT"]), [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a, b = line[i - bpp] if i >= bpp else 0, above[i]
            c = above[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]) & 0xFF
        rows.append(bytes(line))
        above = line
    return np.frombuffer(b"".join(rows), ">u2").reshape(height, width, channels).astype(np.uint16)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The attack's file: 76 KB on disk, 25000x25000 pixels once decoded."""
    row = bytes((BOMB_SIDE + 7) // 8)  # one bit per pixel, all black
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    path.write_bytes(png_bytes(BOMB_SIDE, BOMB_SIDE, 1, 0, [row] * BOMB_SIDE))
    assert path.stat().st_size < 100_000
    return path


# `dni ARGS` in a child that reports its own peak memory (VmHWM: this process's, unlike
# the rusage of a forked child, which counts the parent's pages from before the exec).
# At most 4 GiB of address space, so that a regression fails instead of swapping.
MEASURED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
from dni.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    peak = next(line for line in status if line.startswith("VmHWM:"))
print(int(peak.split()[1]) // 1024)
sys.exit(code)
"""


def run_measured(args: list[str]) -> tuple[int, str, int]:
    """(exit status, stderr, peak resident memory in MiB) of `dni ARGS`."""
    if not Path("/proc/self/status").exists():
        pytest.skip("measuring peak memory needs Linux's /proc")
    result = subprocess.run([sys.executable, "-c", MEASURED, *args], capture_output=True,
                            text=True, timeout=120)
    peak = int(result.stdout.split()[-1]) if result.stdout.strip() else 1 << 20
    return result.returncode, result.stderr, peak


@pytest.fixture()
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(photo()).save(path)
    return path


# -- decompression bombs --------------------------------------------------------------------

def test_a_bomb_image_is_refused_from_its_header(bomb, tiny_family_dir, tmp_path) -> None:
    code, err, peak_mib = run_measured(
        ["apply", str(bomb), "-o", str(tmp_path / "out.png"), "--family", "tiny",
         "--strength", "0.5", "--family-path", str(tiny_family_dir)])
    assert code == 1 and err.count("\n") == 1, err
    assert "25000x25000 pixels, over the limit" in err
    # Decoding it would take 625 MB as grey, 1.9 GB as RGB: the header is all that was read.
    assert peak_mib < 200, peak_mib
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--mask", "--strength-map"])
def test_a_bomb_mask_is_refused_from_its_header(bomb, tiny_family_dir, image_file, tmp_path,
                                                option) -> None:
    amount = [] if option == "--strength-map" else ["--strength", "0.5"]
    code, err, peak_mib = run_measured(
        ["apply", str(image_file), "-o", str(tmp_path / "out.png"), "--family", "tiny",
         option, str(bomb), *amount, "--family-path", str(tiny_family_dir)])
    what = "mask" if option == "--mask" else "strength map"
    assert code == 1 and err.count("\n") == 1, err
    assert f"the {what} is 25000x25000 but the image is 128x128" in err
    assert peak_mib < 200, peak_mib


# -- what files hold is kept, or the run says why not ---------------------------------------

def test_an_animation_is_refused_not_cut_to_its_first_frame(tiny_family_dir, tmp_path,
                                                            capsys) -> None:
    frames = [Image.fromarray(np.full((16, 16, 3), v, np.uint8)) for v in (0, 120, 250)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    out = tmp_path / "out.gif.png"
    assert main(["apply", str(gif), "-o", str(out), "--family", "tiny", "--strength", "0.5",
                 "--family-path", str(tiny_family_dir)]) == 1
    err = capsys.readouterr().err
    assert "has 3 frames" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_colour_png_stays_16_bit(tiny_family_dir, tmp_path, channels) -> None:
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 65536, (24, 40, channels), dtype=np.uint16)
    src, out = tmp_path / "deep.png", tmp_path / "out.png"
    write_png16(src, pixels)
    assert main(["apply", str(src), "-o", str(out), "--family", "identity", "--strength", "0",
                 "--family-path", str(tiny_family_dir)]) == 0
    result = read_png16(out)
    assert result.dtype == np.uint16 and result.shape == pixels.shape
    assert np.array_equal(result, pixels)  # the identity family: every sample, all 16 bits
    assert np.asarray(Image.open(out)).shape == pixels.shape  # a PNG others read too
    assert np.array_equal(read_image(out), pixels)  # and dni reads its own back


def test_16_bit_grey_with_alpha_png_keeps_its_samples(tiny_family_dir, tmp_path) -> None:
    rng = np.random.default_rng(2)
    grey_alpha = rng.integers(0, 65536, (8, 12, 2), dtype=np.uint16)
    src, out = tmp_path / "la16.png", tmp_path / "out.png"
    rows = [row.astype(">u2").tobytes() for row in grey_alpha.reshape(8, -1)]
    src.write_bytes(png_bytes(12, 8, 16, 4, rows))
    assert main(["apply", str(src), "-o", str(out), "--family", "identity", "--strength", "0",
                 "--family-path", str(tiny_family_dir)]) == 0
    result = read_png16(out)  # written as 16-bit RGBA: grey in all three colours
    assert np.array_equal(result[..., 0], grey_alpha[..., 0])
    assert np.array_equal(result[..., 3], grey_alpha[..., 1])


def test_float_tiff_stays_float(tiny_family_dir, tmp_path) -> None:
    values = np.linspace(0.0, 1.0, 30 * 20, dtype=np.float32).reshape(30, 20)
    src, out = tmp_path / "float.tif", tmp_path / "out.tif"
    Image.fromarray(values).save(src)
    assert main(["apply", str(src), "-o", str(out), "--family", "identity", "--strength", "0",
                 "--family-path", str(tiny_family_dir)]) == 0
    with Image.open(out) as img:
        assert img.mode == "F"
        result = np.asarray(img)
    assert np.abs(result - values).max() < 1e-6


def test_float_tiff_to_png_is_16_bit_with_a_warning(tiny_family_dir, tmp_path,
                                                     capsys) -> None:
    values = np.full((10, 10), 0.5, np.float32)
    src, out = tmp_path / "float.tif", tmp_path / "out.png"
    Image.fromarray(values).save(src)
    assert main(["apply", str(src), "-o", str(out), "--family", "identity", "--strength", "0",
                 "--family-path", str(tiny_family_dir)]) == 0
    assert "PNG cannot keep these 32-bit float samples; writing 16-bit" in \
        capsys.readouterr().err
    assert np.all(read_png16(out) == 32768)


# -- weights and manifests ------------------------------------------------------------------

def broken_copy(tiny_family_dir: Path, tmp_path: Path, name: str = "tiny") -> Path:
    import shutil

    folder = tmp_path / name
    shutil.copytree(tiny_family_dir / "tiny", folder)
    toml = folder / "family.toml"
    toml.write_text(toml.read_text().replace('name = "tiny"', f'name = "{name}"'))
    return folder


def test_weights_of_the_wrong_shape_name_the_file_and_tensor(tiny_family_dir,
                                                              tmp_path) -> None:
    folder = broken_copy(tiny_family_dir, tmp_path)
    for member in ("m0", "m1"):
        state = correlated_states(TINY, 1)[0]
        state["body.0.weight"] = torch.zeros(8, 3, 5, 5)
        save_file(state, str(folder / f"{member}.safetensors"))
    with pytest.raises(FamilyError, match=r"m0.safetensors: the weights do not fit "
                       r"architecture 'plain-conv'.*'body.0.weight' is \(8, 3, 5, 5\)"):
        dni.load_family(folder)


@pytest.mark.parametrize("options, message", [
    ({"features": 10**9, "layers": 3}, "'features' must be from 1 to 1024, not 1000000000"),
    ({"features": -5, "layers": 3}, "'features' must be from 1 to 1024, not -5"),
    ({"features": 10**400, "layers": 3}, "'features' must be from 1 to 1024, not one that"),
    ({"features": 8, "layers": 3, "norm": "sparkly"}, "norm must be none, batch or instance"),
    # in range, but far more than the files hold: refused before anything is allocated
    ({"features": 512, "layers": 64}, "the weights do not fit"),
])
def test_absurd_architecture_options_are_refused(tiny_family_dir, tmp_path, options,
                                                 message) -> None:
    folder = broken_copy(tiny_family_dir, tmp_path)
    toml = folder / "family.toml"
    lines = [line for line in toml.read_text().splitlines()
             if not line.startswith(("features", "layers"))]
    at = lines.index("[architecture_options]") + 1
    lines[at:at] = [f"{k} = {v!r}".replace("'", '"') for k, v in options.items()]
    toml.write_text("\n".join(lines) + "\n")
    with pytest.raises(FamilyError, match=message):
        dni.load_family(folder)


def test_nan_weights_are_refused_at_load_naming_the_file(tiny_family_dir, tmp_path,
                                                         capsys) -> None:
    folder = broken_copy(tiny_family_dir, tmp_path)
    state = correlated_states(TINY, 2)[1]
    state["body.2.bias"][3] = float("nan")
    save_file(state, str(folder / "m1.safetensors"))
    with pytest.raises(FamilyError, match=r"m1.safetensors: tensor 'body.2.bias' holds NaN"):
        dni.load_family(folder)
    state["body.2.bias"][3] = float("inf")
    save_file(state, str(folder / "m1.safetensors"))
    src = tmp_path / "in.png"
    Image.fromarray(photo()).save(src)
    assert main(["apply", str(src), "-o", str(tmp_path / "out.png"), "--family", "tiny",
                 "--strength", "0.5", "--family-path", str(tmp_path)]) == 1
    assert "holds NaN or infinite values" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def deflated(src: Path, dst: Path) -> None:
    """The same torch checkpoint, its zip members compressed."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info.filename, old.read(info.filename))


def test_a_compressed_checkpoint_bomb_is_refused_before_loading(tmp_path) -> None:
    from dni.checkpoints import read_state_dict

    plain, bomb = tmp_path / "plain.pth", tmp_path / "bomb.pth"
    torch.save({"w": torch.zeros(16 * 2**20)}, str(plain))  # 64 MiB of zeros
    deflated(plain, bomb)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(FamilyError, match=r"bomb.pth: this checkpoint would expand from "
                       r"\d+ bytes on disk to \d+ bytes"):
        read_state_dict(bomb)
    # Real weights barely compress: such a checkpoint still loads.
    honest, packed = tmp_path / "honest.pth", tmp_path / "packed.pth"
    weights = correlated_states(TINY, 1)[0]
    torch.save(weights, str(honest))
    deflated(honest, packed)
    loaded = read_state_dict(packed)
    assert all(torch.equal(loaded[k], v) for k, v in weights.items())


def test_tiny_images_run_through_every_bundled_stride(tmp_path) -> None:
    """Stylize pads by reflection and halves twice: 4 px used to be a RuntimeError."""
    family = dni.load_family("stylize", device="cpu")
    rng = np.random.default_rng(0)
    for shape in [(4, 4, 3), (1, 1, 3), (2, 300, 3), (3, 2)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        assert family.apply(image, strength=0.5).shape == shape


def test_a_strength_with_a_strength_map_is_refused(tiny_family_dir) -> None:
    family = dni.load_family(tiny_family_dir / "tiny")
    smap = np.full(photo().shape[:2], 0.5, np.float32)
    with pytest.raises(WeightsError, match="strength map sets the strength pixel by pixel"):
        family.apply(photo(), strength=0.3, strength_map=smap)


@pytest.mark.parametrize("edit, message", [
    (("position = 1\n", "position = 1" + "0" * 400 + "\n"), "position is a number too large"),
    (("position = 1\n", 'position = "one"\n'), "position must be a number, not 'one'"),
    (("position = 1\n", "position = 1" + "0" * 5000 + "\n"), "not valid TOML"),
    (("strength = 0.5", "strength = 1" + "0" * 400), "strength is a number too large"),
    (("strength = 0.5", "strength = nan"), "strength must be a finite number"),
])
def test_bad_numbers_in_a_manifest_are_one_warning(tiny_family_dir, tmp_path, edit,
                                                    message) -> None:
    folder = broken_copy(tiny_family_dir, tmp_path, "odd")
    toml = folder / "family.toml"
    text = toml.read_text()
    assert edit[0] in text
    toml.write_text(text.replace(*edit))
    result = subprocess.run(DNI + ["families", "--family-path", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert "odd " not in result.stdout


def test_dni_mix_refuses_nan_weights(tiny_family_dir, tmp_path, capsys) -> None:
    state = correlated_states(IDENTITY, 1)[0]
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file(state, str(a))
    save_file({k: torch.full_like(v, float("nan")) for k, v in state.items()}, str(b))
    out = tmp_path / "mixed.safetensors"
    assert main(["mix", str(a), str(b), "--weights", "0.5,0.5", "-o", str(out)]) == 1
    assert "b.safetensors: tensor" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "b.safetensors"]


def write_tiff_rgb16(path: Path, pixels: np.ndarray) -> None:
    """An uncompressed 16-bit RGB TIFF, little-endian (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    data = pixels.astype("<u2").tobytes()
    bits_at, data_at = 8, 16
    tags = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, bits_at), (259, 3, 1, 1),
            (262, 3, 1, 2), (273, 4, 1, data_at), (277, 3, 1, 3), (278, 3, 1, height),
            (279, 4, 1, len(data)), (284, 3, 1, 1)]
    ifd_at = data_at + len(data)
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHII", tag, kind, count, value) if kind == 4 or count > 1
        else struct.pack("<HHIHH", tag, kind, count, value, 0)
        for tag, kind, count, value in tags) + struct.pack("<I", 0)
    path.write_bytes(b"II*\0" + struct.pack("<I", ifd_at) + struct.pack("<3H", 16, 16, 16)
                     + b"\0\0" + data + ifd)


def test_16_bit_colour_tiff_is_read_as_8_bit_with_a_warning(tiny_family_dir, tmp_path,
                                                            capsys) -> None:
    pixels = np.full((6, 5, 3), 200 * 257, np.uint16)
    src, out = tmp_path / "deep.tif", tmp_path / "out.png"
    write_tiff_rgb16(src, pixels)
    assert Image.open(src).mode == "RGB"  # what Pillow makes of it: 8 bits a channel
    assert main(["apply", str(src), "-o", str(out), "--family", "identity", "--strength", "0",
                 "--family-path", str(tiny_family_dir)]) == 0
    assert "reads this TIFF file's 16-bit colour as 8 bits per channel" in \
        capsys.readouterr().err
    assert np.all(np.asarray(Image.open(out)) == 200)


def test_16_bit_png_colour_key_becomes_alpha(tmp_path) -> None:
    pixels = np.array([[[1000, 2000, 3000], [4000, 5000, 6000]]], np.uint16)
    src = tmp_path / "keyed.png"
    data = png_bytes(2, 1, 16, 2, [pixels[0].astype(">u2").tobytes()])
    at = data.index(b"IDAT") - 4  # tRNS goes before the image data
    trns = struct.pack(">3H", 4000, 5000, 6000)
    trns_chunk = struct.pack(">I", 6) + b"tRNS" + trns + struct.pack(
        ">I", zlib.crc32(b"tRNS" + trns))
    src.write_bytes(data[:at] + trns_chunk + data[at:])
    assert read_image(src).tolist() == [[[1000, 2000, 3000, 65535], [4000, 5000, 6000, 0]]]
