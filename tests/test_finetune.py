"""`dni finetune`: a tiny network fine-tuned on real photos becomes a family that blends.

Every run is the real command (in this process, or as a child process for SIGTERM) on a
3-layer network and crops of the photos in tests/data; one thread keeps each step a few
milliseconds on a busy CPU.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, TINY, correlated_states, photo, write_family
from PIL import Image
from safetensors.torch import load_file

from dni import finetune
from dni.checkpoints import read_state_dict
from dni.cli import main
from dni.correlation import correlation_report
from dni.degradations import Effect, gaussian_blur, jpeg
from dni.family import Family
from dni.manifest import load_manifest

FAST = ["--patch", "32", "--batch", "8"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("families")
    write_family(root, "tiny", correlated_states(TINY, 2), options=TINY, task="denoise")
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut-crop.png", "rocket-small.png"):
        shutil.copy(DATA / name, folder / name)
    return folder


def finetune_args(families: Path, photos: Path, out: Path, name: str, *extra: str) -> list[str]:
    return ["finetune", "tiny:m0", "--name", name, "--images", str(photos), "--out", str(out),
            "--family-path", str(families), *FAST, *extra]


def noisy(clean: np.ndarray, sigma: float, seed: int = 7) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, clean.shape)
    return np.clip(clean + noise + 0.5, 0, 255).astype(np.uint8)


def test_noise_family_correlates_and_its_slider_moves_monotonically(families, photos,
                                                                    tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(finetune_args(families, photos, out, "tiny-dn", "--noise", "25",
                              "--steps", "120")) == 0
    printed = capsys.readouterr().out
    assert "-> correlated" in printed
    assert sorted(p.name for p in out.iterdir()) == ["tiny-dn"]  # no staging folder left
    folder = out / "tiny-dn"
    manifest = load_manifest(folder)
    assert (manifest.task, manifest.axis_name) == ("denoise", "noise removal")
    assert manifest.low_label == "as tiny: member 0"
    assert manifest.high_label == "removes noise of sigma 25"
    members = [read_state_dict(m.file) for m in manifest.members]
    assert all(t.dtype == torch.float16 for sd in members for t in sd.values())
    base = load_file(str(families / "tiny" / "m0.safetensors"))
    assert all(torch.equal(members[0][k], base[k].half()) for k in base)
    # Eq. 3 on the files as shipped, not on what the tool reported.
    report = correlation_report(members[0], members[1])
    assert report.verdict == "correlated" and report.median > 0.9
    record = json.loads((folder / "training.json").read_text())
    assert record["steps"] == 120 and record["device"] == "cpu"
    assert record["correlation"]["verdict"] == "correlated"
    assert record["effect"] == {"kind": "noise", "amount": 25.0}
    assert len(record["losses"]) >= 10 and record["losses"][-1]["l1"] < record["losses"][0]["l1"]

    # Along the slider, on a photo the net never saw with fresh noise: the output moves
    # away from the base's steadily, and the error to the clean photo falls all the way.
    clean = photo("rocket-small.png")[:96, :96].astype(np.float64)
    family = Family(manifest, device="cpu")
    outs = [family.apply(noisy(clean, 25), strength=s).astype(np.float64)
            for s in np.linspace(0, 1, 5)]
    moved = [np.abs(o - outs[0]).mean() for o in outs]
    error = [np.abs(o - clean).mean() for o in outs]
    assert all(b > a for a, b in zip(moved, moved[1:], strict=False)), moved
    assert all(b < a for a, b in zip(error, error[1:], strict=False)), error

    image = tmp_path / "noisy.png"
    Image.fromarray(noisy(clean, 25)).save(image)
    assert main(["apply", str(image), "-o", str(tmp_path / "o.png"), "--family", "tiny-dn",
                 "--family-path", str(out), "--strength", "0.5"]) == 0
    assert Image.open(tmp_path / "o.png").size == (96, 96)


def signal_at_step(monkeypatch: pytest.MonkeyPatch, signum: int, at: int) -> None:
    """Deliver a real `signum` to this process in the middle of training step `at`."""
    calls = []
    step = finetune.train_step

    def step_with_signal(*args: object) -> float:
        calls.append(1)
        if len(calls) == at:
            signal.raise_signal(signum)
        return step(*args)

    monkeypatch.setattr(finetune, "train_step", step_with_signal)


def test_sigterm_keeps_a_checkpoint_and_resume_finishes(families, photos, tmp_path, capsys,
                                                        monkeypatch) -> None:
    out = tmp_path / "out"
    args = finetune_args(families, photos, out, "tiny-term", "--noise", "15", "--steps", "60")
    with monkeypatch.context() as patch:
        signal_at_step(patch, signal.SIGTERM, 20)
        assert main(args) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "stopped at step 20" in err and "--resume" in err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    staging = out / ".tiny-term.dni-finetune"
    assert [p.name for p in out.iterdir()] == [staging.name]  # no family, half or whole
    saved = load_file(str(staging / finetune.CHECKPOINT))  # safetensors: nothing unpickled
    assert any(k.startswith("opt.adam.") for k in saved)

    # The same command without --resume refuses to throw the checkpoint away.
    assert main(args) == 1
    assert "--resume" in capsys.readouterr().err
    # Settings other than the checkpoint's are refused by name.
    assert main(finetune_args(families, photos, out, "tiny-term", "--noise", "30",
                              "--steps", "60", "--resume")) == 1
    assert "effect" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    record = json.loads((out / "tiny-term" / "training.json").read_text())
    assert record["steps"] == 60 and record["resumed_at_steps"] == [20]
    assert record["losses"][0]["step"] < 20 < record["losses"][-1]["step"]  # kept over the stop
    assert sorted(p.name for p in out.iterdir()) == ["tiny-term"]


def test_ctrl_c_stops_between_steps(families, photos, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "out"
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when run in the background (nohup)
    signal_at_step(monkeypatch, signal.SIGINT, 5)
    assert main(finetune_args(families, photos, out, "tiny-int", "--jpeg", "30",
                              "--steps", "50")) == 130
    assert "stopped at step 5" in capsys.readouterr().err
    assert not (out / "tiny-int").exists()
    assert (out / ".tiny-int.dni-finetune" / finetune.CHECKPOINT).is_file()
    assert signal.getsignal(signal.SIGINT) is before  # restored


@pytest.mark.parametrize(("args", "says"), [
    (["--images", "EMPTY", "--noise", "25"], "holds no images"),
    (["--images", "PHOTOS", "--noise", "25", "--jpeg", "30"], "got --noise and --jpeg"),
    (["--images", "PHOTOS"], "exactly one of --noise"),
    (["--noise", "25"], "--images DIR"),
    (["--images", "PHOTOS", "--jpeg", "0"], "JPEG quality must be from 1 to 95"),
    (["--images", "PHOTOS", "--noise", "25", "--base", "nosuch:m0"], "no installed family"),
    (["--images", "PHOTOS", "--noise", "25", "--base", "tiny"], "say which member"),
    (["--images", "PHOTOS", "--noise", "25", "--base", "tiny:m7"], "no member 'm7'"),
    (["--images", "PHOTOS", "--noise", "25", "--name", "Bad Name"], "a family name is"),
    (["--images", "PHOTOS", "--noise", "25", "--patch", "512"], "no image is at least"),
])
def test_bad_input_is_one_line_and_leaves_nothing(families, photos, tmp_path, capsys,
                                                  args, says) -> None:
    (tmp_path / "empty").mkdir()
    folders = {"EMPTY": str(tmp_path / "empty"), "PHOTOS": str(photos)}
    args = [folders.get(a, a) for a in args]
    base, name = "tiny:m0", "tiny-bad"
    if "--base" in args:
        base = args.pop(args.index("--base") + 1)
        args.remove("--base")
    if "--name" in args:
        name = args.pop(args.index("--name") + 1)
        args.remove("--name")
    out = tmp_path / "out"
    code = main(["finetune", base, "--name", name, "--out", str(out), "--family-path",
                 str(families), "--steps", "3", *args])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("dni: error: ") and says in err, err
    assert not out.exists()


def test_a_spandrel_checkpoint_becomes_a_super_resolution_family(photos, tmp_path) -> None:
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    checkpoint = tmp_path / "compact-x2.pth"
    torch.save(Compact(num_feat=8, num_conv=2, upscale=2).state_dict(), checkpoint)
    out = tmp_path / "out"
    assert main(["finetune", str(checkpoint), "--name", "sharp-x2", "--images", str(photos),
                 "--blur", "1.5", "--steps", "10", "--patch", "24", "--out", str(out)]) == 0
    manifest = load_manifest(out / "sharp-x2")
    assert (manifest.architecture, manifest.scale, manifest.task) == ("auto", 2,
                                                                      "super-resolve")
    assert manifest.high_label == "undoes a blur of 1.5 px"
    assert main(["apply", str(DATA / "astronaut-crop.png"), "-o", str(tmp_path / "big.png"),
                 "--family", "sharp-x2", "--family-path", str(out), "--strength", "1"]) == 0
    assert Image.open(tmp_path / "big.png").size == (256, 256)


def test_example_pairs(families, photos, tmp_path) -> None:
    inputs, targets = tmp_path / "in", tmp_path / "target"
    inputs.mkdir()
    targets.mkdir()
    for path in photos.iterdir():
        clean = np.asarray(Image.open(path).convert("RGB"))
        Image.fromarray(noisy(clean.astype(np.float64), 20)).save(inputs / f"{path.stem}.png")
        Image.fromarray(clean).save(targets / f"{path.stem}.jpg", quality=98)
    out = tmp_path / "out"
    assert main(["finetune", "tiny:m0", "--name", "tiny-pairs", "--pairs", str(inputs),
                 str(targets), "--steps", "5", "--out", str(out), "--family-path",
                 str(families), *FAST]) == 0
    assert load_manifest(out / "tiny-pairs").axis_name == "learned effect"
    (targets / "rocket-small.jpg").unlink()
    assert main(["finetune", "tiny:m0", "--name", "tiny-pairs2", "--pairs", str(inputs),
                 str(targets), "--steps", "5", "--out", str(out), "--family-path",
                 str(families)]) == 1


def test_the_effects_degrade_as_named() -> None:
    clean = torch.from_numpy(photo()[:64, :64].copy()).permute(2, 0, 1).float().div(255)
    gen = torch.Generator().manual_seed(0)
    noise = Effect("noise", 25).apply(clean[None], gen)[0] - clean
    assert abs(float(noise.std()) * 255 - 25) < 3  # a little less: clipped at 0 and 1
    squashed = jpeg(clean, 10)
    assert squashed.shape == clean.shape and 0.005 < float((squashed - clean).abs().mean()) < 0.1
    blurred = gaussian_blur(clean[None], 2.0)[0]
    detail = (clean[:, :, 1:] - clean[:, :, :-1]).abs().mean()
    assert float((blurred[:, :, 1:] - blurred[:, :, :-1]).abs().mean()) < 0.6 * float(detail)
    assert torch.allclose(blurred.mean(), clean.mean(), atol=0.01)


def test_a_damaged_checkpoint_is_one_clear_error(families, photos, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    staging = out / ".tiny-cut.dni-finetune"
    staging.mkdir(parents=True)
    (staging / finetune.CHECKPOINT).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    args = finetune_args(families, photos, out, "tiny-cut", "--noise", "25", "--steps", "3")
    assert main([*args, "--resume"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read the checkpoint" in err, err
    assert not (out / "tiny-cut").exists()


def test_big_photos_are_halved_until_they_fit() -> None:
    from dni.finetune_data import MAX_SIDE, shrunk

    wide = torch.arange(3 * 10 * 5000, dtype=torch.int64).remainder(256).to(torch.uint8)
    small = shrunk(wide.reshape(3, 10, 5000))
    assert tuple(small.shape) == (3, 2, 1250) and max(small.shape) <= MAX_SIDE
    flat = torch.full((3, 8, 4100), 77, dtype=torch.uint8)
    assert bool((shrunk(flat) == 77).all())
