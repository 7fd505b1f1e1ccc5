"""The dejpeg family: its recipe (smoke run), the bundled family (falling quality
positions, ends equal to the members, presets, `auto` from the JPEG quality), and its
filter in both editors."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dni
from dni import jpeg_quality
from dni.checkpoints import build_model, read_state_dict
from dni.errors import WeightsError
from dni.manifest import load_manifest
from dni_client import filters, mixing
from dni_client.errors import MixError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.recipes import dejpeg  # noqa: E402
from models.recipes.common import load_checkpoint  # noqa: E402

FAMILY = ROOT / "models" / "dejpeg"
PHOTO = ROOT / "samples" / "astronaut.png"


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _photo() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB"))


def _jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality, subsampling=2)
    return np.asarray(Image.open(buf).convert("RGB"))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


# -- the recipe ---------------------------------------------------------------------------
def test_smoke_trains_q30_then_fine_tunes_q10_and_q60_from_it_and_resumes(
        tmp_path: Path) -> None:
    dejpeg.main(["--smoke", "--out", str(tmp_path)])
    folder = tmp_path / "dejpeg"
    assert sorted(f.stem for f in folder.glob("*.safetensors")) == ["q10", "q30", "q60"]
    record = json.loads((folder / "training.json").read_text())["members"]
    assert record["q30"]["init_from"] is None  # --smoke: a tiny net, not the denoise weights
    for member, quality in (("q10", 10), ("q60", 60)):
        assert record[member]["init_from"] == str(folder / "q30.safetensors")
        assert record[member]["extra"]["quality"] == quality
        assert record[member]["extra"]["subsampling"] == "4:2:0"
    model = build_model(dejpeg.ARCH_NAME, dejpeg.SMOKE_ARCH,
                        read_state_dict(folder / "q10.safetensors"))
    assert model(torch.rand(1, 3, 21, 30)).shape == (1, 3, 21, 30)
    ckpt = tmp_path / "runs" / "dejpeg" / "q30" / "ckpt.safetensors"
    steps = load_checkpoint(ckpt, model.train(), {})["step"]
    dejpeg.main(["--smoke", "--member", "q30", "--out", str(tmp_path)])
    assert "resumed at step" in (ckpt.parent / "log.txt").read_text()
    assert load_checkpoint(ckpt, model, {})["step"] == steps


def test_the_base_says_plainly_when_the_denoise_weights_it_starts_from_are_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dejpeg, "BASE_INIT", tmp_path / "missing.safetensors")
    with pytest.raises(SystemExit, match="starts from the denoise family's sigma 25"):
        dejpeg.main(["--member", "q30", "--out", str(tmp_path), "--steps", "1"])


def test_training_pairs_are_real_jpegs_cut_on_and_off_the_block_grid() -> None:
    region = torch.from_numpy(_photo()[:80, :80].copy()).permute(2, 0, 1)[None].float() / 255
    offsets = [(0, 0), (8, 8), (3, 11)]
    bad, clean = dejpeg.compressed_pairs(region.repeat(3, 1, 1, 1), 10, 64, offsets)
    assert bad.shape == clean.shape == (3, 3, 64, 64)
    whole = dejpeg.jpeg(_photo()[:80, :80].copy(), 10)
    for i, (dy, dx) in enumerate(offsets):
        expected = torch.from_numpy(whole[dy:dy + 64, dx:dx + 64].copy()).permute(2, 0, 1)
        assert torch.equal((bad[i] * 255).round().to(torch.uint8), expected)
        assert torch.equal(clean[i], region[0, :, dy:dy + 64, dx:dx + 64])
    gen = torch.Generator().manual_seed(0)
    drawn = dejpeg.grid_offsets(400, gen)
    on_grid = sum(dy % 8 == 0 and dx % 8 == 0 for dy, dx in drawn)
    assert 0.45 < on_grid / 400 < 0.65  # half on the grid, plus chance hits of the rest
    assert {dy for dy, _ in drawn} == set(range(dejpeg.CHROMA_BLOCK))


# -- falling positions ----------------------------------------------------------------------
def test_positions_may_fall_along_the_members() -> None:
    qualities = [60, 30, 10]
    assert mixing.normalised_positions(qualities) == [0.0, 0.6, 1.0]
    assert mixing.strength_to_weights(0.6, qualities) == (0.0, 1.0, 0.0)
    assert mixing.strength_to_weights(0.8, qualities) == pytest.approx((0.0, 0.5, 0.5))
    assert mixing.weights_to_strength((0.0, 0.5, 0.5), qualities) == pytest.approx(0.8)
    with pytest.raises(MixError, match="all rise or all fall"):
        mixing.normalised_positions([10, 60, 30])


# -- the bundled family -------------------------------------------------------------------
def test_the_family_lists_its_members_from_gentle_to_strong() -> None:
    manifest = load_manifest(FAMILY)
    assert [m.label for m in manifest.members] == ["quality 60", "quality 30", "quality 10"]
    assert manifest.positions == [60.0, 30.0, 10.0]
    assert manifest.task == "dejpeg" and manifest.axis_measures == "jpeg-quality"
    presets = {p.name: p.strength for p in manifest.presets}
    assert presets == {"Light": 0.0, "Medium": 0.6, "Strong": 1.0}


@pytest.mark.parametrize("strength, member", [(0.0, "q60"), (0.6, "q30"), (1.0, "q10")])
def test_strengths_at_the_members_give_exactly_the_members(strength: float,
                                                             member: str) -> None:
    family = dni.load_family(FAMILY, device="cpu", precision="fp32")
    blended = family.model_at(strength=strength).state_dict()
    stored = read_state_dict(FAMILY / f"{member}.safetensors")
    for key, value in stored.items():
        assert torch.equal(blended[key], value.float()), key


def test_auto_reads_the_quality_and_lands_on_the_matching_strength() -> None:
    family = dni.load_family(FAMILY, device="cpu", precision="fp32")
    photo = _photo()
    for quality in (10, 30, 60):
        pixels = _jpeg(photo, quality)
        read = jpeg_quality.quality_from_pixels(pixels)
        assert read is not None and abs(read - quality) <= 2
        # The family's axis: quality 60 at strength 0, 10 at strength 1, linear between.
        strength = min(max((60 - read) / 50, 0.0), 1.0)
        assert np.array_equal(family.apply(pixels, strength="auto"),
                              family.apply(pixels, strength=strength)), quality
    with pytest.raises(WeightsError, match="no JPEG compression can be read"):
        family.apply(photo, strength="auto")


def test_the_family_removes_artefacts_of_a_real_photo() -> None:
    family = dni.load_family(FAMILY, device="cpu", precision="fp32")
    photo = _photo()
    for quality in (10, 30):
        pixels = _jpeg(photo, quality)
        restored = family.apply(pixels, strength="auto")
        assert _psnr(restored, photo) > _psnr(pixels, photo) + 1.0, quality


# -- the filter in both editors ------------------------------------------------------------
def test_both_editors_offer_remove_jpeg_artefacts_with_the_family() -> None:
    sys.path.insert(0, str(ROOT / "plugin" / "krita"))
    try:
        from dni_krita.plugin import menu_entries
    finally:
        sys.path.pop(0)
    entry = next(e for e in menu_entries() if e.task == "dejpeg")
    assert (entry.action_id, entry.text) == ("dni_dejpeg", "Remove JPEG Artefacts…")
    engine = dni.Engine("cpu", [ROOT / "models"])
    from dni_client.families import FamilyInfo

    offered = filters.families_for(filters.filter_for("dejpeg"),
                                   [FamilyInfo.from_dict(f) for f in engine.families()])
    assert [f.name for f in offered] == ["dejpeg"]
    fakes_dir = str(ROOT / "tests" / "fakes_gimp")
    sys.path.insert(0, fakes_dir)
    try:
        from gimp_testkit import load_fakes, unload_fakes
    finally:
        sys.path.remove(fakes_dir)
    fakes = load_fakes()
    try:
        plugin = fakes["entry"].DniFilters()
        assert "plug-in-dni-dejpeg" in plugin.do_query_procedures()
        procedure = plugin.do_create_procedure("plug-in-dni-dejpeg")
        assert procedure.meta["menu_paths"] == ["<Image>/Filters/Enhance"]
        assert procedure.meta["menu_label"] == "DNI Remove JPEG Artefacts..."
    finally:
        unload_fakes()
