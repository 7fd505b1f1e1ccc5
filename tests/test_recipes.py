"""Smoke runs of every training recipe: tiny nets, synthetic images, a few steps."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dni.checkpoints import build_model, read_state_dict  # noqa: E402
from dni.manifest import load_manifest  # noqa: E402
from models.recipes import data, denoise, stylize, super_resolve  # noqa: E402
from models.recipes.common import load_checkpoint  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _members(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def test_denoise_smoke_trains_every_member_and_resumes(tmp_path: Path) -> None:
    denoise.main(["--smoke", "--out", str(tmp_path)])
    files = _members(tmp_path / "denoise")
    assert [f.stem for f in files] == ["sigma15", "sigma25", "sigma50"]
    sd = read_state_dict(files[0])
    model = build_model(denoise.ARCH_NAME, denoise.SMOKE_ARCH, sd)
    assert model(torch.rand(1, 3, 17, 20)).shape == (1, 3, 17, 20)
    # A second run resumes from the checkpoint instead of starting over.
    ckpt = tmp_path / "runs" / "denoise" / "sigma25" / "ckpt.safetensors"
    steps = load_checkpoint(ckpt, model.train(), {})["step"]
    denoise.main(["--smoke", "--member", "sigma25", "--out", str(tmp_path)])
    assert "resumed at step" in (ckpt.parent / "log.txt").read_text()
    assert load_checkpoint(ckpt, model, {})["step"] == steps
    assert (tmp_path / "denoise" / "training.json").exists()


def test_super_resolve_smoke_gives_spandrel_compact_members(tmp_path: Path) -> None:
    super_resolve.main(["--smoke", "--out", str(tmp_path)])
    files = _members(tmp_path / "super-resolve")
    assert [f.stem for f in files] == ["detailed", "faithful"]
    for f in files:
        model = build_model("auto", {}, read_state_dict(f))
        assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("recipe, family, member", [
    (super_resolve, "super-resolve", "faithful"), (denoise, "denoise", "sigma25")])
def test_continuing_a_member_extends_its_training_record(tmp_path: Path, recipe, family: str,
                                                         member: str) -> None:  # noqa: ANN001
    recipe.main(["--smoke", "--member", member, "--out", str(tmp_path)])
    record_path = tmp_path / family / "training.json"
    first = json.loads(record_path.read_text())["members"][member]
    shipped = tmp_path / f"{member}-v1.safetensors"
    shutil.copyfile(tmp_path / family / f"{member}.safetensors", shipped)
    recipe.main(["--smoke", "--member", member, "--out", str(tmp_path),
                 "--runs", str(tmp_path / "runs2"), "--continue-from", str(shipped),
                 "--steps", "3", "--lr", "1e-5"])
    record = json.loads(record_path.read_text())["members"][member]
    assert record["init_from"] == str(shipped)
    assert record["lr"] == 1e-5
    assert record["earlier"] == [first]
    assert record["steps"] == first["steps"] + 3
    # A second continuation keeps each run's own numbers, and the totals add up once.
    recipe.main(["--smoke", "--member", member, "--out", str(tmp_path),
                 "--runs", str(tmp_path / "runs3"), "--continue-from", str(shipped),
                 "--steps", "2", "--lr", "1e-5"])
    second_total = record
    record = json.loads(record_path.read_text())["members"][member]
    assert [r["steps"] for r in record["earlier"]] == [first["steps"], 3]
    assert record["steps"] == first["steps"] + 3 + 2
    assert record["earlier"][1]["seconds"] == pytest.approx(
        second_total["seconds"] - first["seconds"], abs=0.11)
    with pytest.raises(SystemExit):
        recipe.main(["--smoke", "--continue-from", str(shipped)])


def test_stylize_smoke_trains_three_styles_and_the_stroke_pair(tmp_path: Path) -> None:
    stylize.main(["--smoke", "--out", str(tmp_path)])
    assert [f.stem for f in _members(tmp_path / "stylize")] == [
        "elephants", "graffiti", "starry_night"]
    assert [f.stem for f in _members(tmp_path / "stylize-stroke")] == ["broad", "fine"]
    sd = read_state_dict(tmp_path / "stylize" / "graffiti.safetensors")
    model = build_model("dni-stylize", stylize.SMOKE_ARCH, sd)
    assert model(torch.rand(1, 3, 30, 22)).shape == (1, 3, 30, 22)


def test_bundled_manifests_match_the_recipes() -> None:
    """The shipped manifests' options are the ones the recipes train with."""
    assert load_manifest(ROOT / "models" / "denoise").architecture_options == denoise.ARCH
    assert load_manifest(ROOT / "models" / "stylize").architecture_options == stylize.ARCH
    assert load_manifest(ROOT / "models" / "stylize-stroke").architecture_options == stylize.ARCH


def test_precision_option_resolves_and_refuses_bf16_without_cpu_support(monkeypatch) -> None:  # noqa: ANN001
    from models.recipes import common

    conv = torch.nn.Conv2d(3, 4, 3)
    with common.autocast("bf16"):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.bfloat16
    with common.autocast("fp32"):
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.float32
    monkeypatch.setattr(common, "cpu_has_bf16", lambda: False)
    assert common.resolve_precision("auto") == "fp32"
    with pytest.raises(SystemExit, match="no bf16 units"):
        common.resolve_precision("bf16")
    monkeypatch.setattr(common, "cpu_has_bf16", lambda: True)
    assert common.resolve_precision("auto") == "bf16"


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                    reason="this CPU has no bf16 units, so --precision bf16 is refused here")
def test_denoise_bf16_run_resumes_from_its_channels_last_checkpoint(tmp_path: Path) -> None:
    args = ["--smoke", "--member", "sigma25", "--out", str(tmp_path), "--precision", "bf16"]
    denoise.main([*args, "--steps", "3"])
    denoise.main([*args, "--steps", "6"])  # Adam moments saved channels-last load back
    ckpt = tmp_path / "runs" / "denoise" / "sigma25" / "ckpt.safetensors"
    assert "resumed at step 3" in (ckpt.parent / "log.txt").read_text()
    record = json.loads((tmp_path / "denoise" / "training.json").read_text())["members"]
    assert record["sigma25"]["extra"]["precision"] == "bf16"
    sd = read_state_dict(tmp_path / "denoise" / "sigma25.safetensors")
    assert {v.dtype for v in sd.values()} == {torch.float16}
    assert all(v.is_contiguous() for v in sd.values())


@pytest.mark.parametrize("bad", [["--patch", "60"], ["--patch", "8"], ["--batch", "0"]])
def test_denoise_refuses_crops_off_the_nets_grid(tmp_path: Path, bad: list[str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        denoise.main(["--smoke", "--member", "sigma25", "--out", str(tmp_path), *bad])
    assert bad[0] in capsys.readouterr().err
    assert not (tmp_path / "denoise").exists()


def test_denoise_record_counts_its_training_images(tmp_path: Path) -> None:
    denoise.main(["--smoke", "--member", "sigma25", "--out", str(tmp_path), "--steps", "2"])
    record = json.loads((tmp_path / "denoise" / "training.json").read_text())["members"]
    assert record["sigma25"]["extra"]["train_images"] == len(data.smoke_images())


def test_big_training_photos_also_get_a_less_shrunk_copy(tmp_path: Path) -> None:
    for split in ("train", "train-large", "val"):
        (tmp_path / split).mkdir()
    data.save_photo(Image.new("RGB", (4800, 3200), "gray"), "train", "big", tmp_path)
    data.save_photo(Image.new("RGB", (900, 600), "gray"), "train", "small", tmp_path)
    data.save_photo(Image.new("RGB", (4800, 3200), "gray"), "val", "held", tmp_path)
    sizes = {f"{p.parent.name}/{p.stem}": Image.open(p).size for p in tmp_path.rglob("*.png")}
    assert sizes == {"train/big": (600, 400), "train-large/big": (1200, 800),
                     "train/small": (900, 600), "val/held": (600, 400)}


def test_denoise_large_photos_adds_the_second_scale(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    images = tmp_path / "images"
    for split, count in (("train", 2), ("train-large", 1)):
        (images / split).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (48, 40), (i * 90, 60, 30)).save(images / split / f"{i}.png")
    monkeypatch.setattr(data, "IMAGES", images)
    out = tmp_path / "out"
    common = ["--member", "sigma25", "--steps", "1", "--patch", "16", "--batch", "2"]
    record = out / "denoise" / "training.json"
    for runs, extra, counts in (("r1", [], (2, 0)), ("r2", ["--large-photos"], (3, 1))):
        denoise.main([*common, *extra, "--out", str(out), "--runs", str(tmp_path / runs)])
        entry = json.loads(record.read_text())["members"]["sigma25"]["extra"]
        assert (entry["train_images"], entry["large_photos"]) == counts
    shutil.rmtree(images / "train-large")
    with pytest.raises(SystemExit, match="train-large"):
        denoise.main([*common, "--large-photos", "--out", str(out), "--runs", str(tmp_path)])


def test_grown_denoiser_starts_as_the_shallower_one(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from dni.archs.denoise import DenoiseUNet
    from models.recipes.common import export_member

    torch.manual_seed(0)
    shallow = DenoiseUNet(features=8, blocks=1, middle=1).eval()
    export_member(shallow, tmp_path / "shallow.safetensors")
    deep = DenoiseUNet(features=8, blocks=2, middle=1).eval()
    assert denoise.load_grown(deep, tmp_path / "shallow.safetensors") == [
        "dec1.1", "dec2.1", "enc1.1", "enc2.1"]
    x = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        # Give the shallow net the fp16-rounded weights the grown one loaded: exact match.
        shallow.load_state_dict(deep.state_dict(), strict=False)
        assert torch.equal(deep(x), shallow(x))
    assert deep.enc1[1].conv1.weight.abs().sum() > 0  # new blocks still train
    export_member(deep, tmp_path / "deep.safetensors")
    with pytest.raises(SystemExit, match="has weights this net lacks"):
        denoise.load_grown(DenoiseUNet(features=8, blocks=1, middle=1),
                           tmp_path / "deep.safetensors")
    headless = {k: v for k, v in shallow.state_dict().items() if not k.startswith("head.")}
    save_file(headless, str(tmp_path / "headless.safetensors"))
    with pytest.raises(SystemExit, match="more than whole residual blocks"):
        denoise.load_grown(DenoiseUNet(features=8, blocks=1, middle=1),
                           tmp_path / "headless.safetensors")
