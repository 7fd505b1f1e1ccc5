"""Tiled inference equals untiled inference where the receptive field fits the overlap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import photo

from dni.tiling import plan_tiles


@pytest.mark.parametrize("height, width, tile, pad, scale", [
    (100, 77, 32, 8, 1), (64, 64, 64, 16, 1), (90, 130, 40, 16, 2), (33, 200, 48, 8, 4)])
def test_ramps_form_a_partition_of_unity(height: int, width: int, tile: int, pad: int,
                                         scale: int) -> None:
    total = np.zeros((height * scale, width * scale))
    for t in plan_tiles(height, width, tile, pad, scale):
        y0, y1, x0, x1 = t.dst
        sy0, sy1, sx0, sx1 = t.src
        # the output region lies inside what the network saw
        assert sy0 * scale <= y0 and y1 <= sy1 * scale and sx0 * scale <= x0 and x1 <= sx1 * scale
        total[y0:y1, x0:x1] += t.weights()
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


@pytest.mark.parametrize("family_name, tile", [("tiny", 32), ("tiny-x2", 40), ("tiny3", 48)])
def test_tiled_equals_untiled(tiny_family_dir, family_name: str, tile: int) -> None:
    import dni

    family = dni.load_family(tiny_family_dir / family_name)
    # tiny families: 3 conv layers of 3x3 -> receptive-field radius 3 <= pad // 2 = 8
    image = photo().astype(np.float32) / 255.0
    whole = family.apply(image, strength=0.4, tile=4096)
    tiled = family.apply(image, strength=0.4, tile=tile)
    assert len(plan_tiles(*image.shape[:2], tile, 16)) > 4
    np.testing.assert_allclose(tiled, whole, atol=1e-4, rtol=0)


def test_progress_per_tile_and_cancel_between_tiles(tiny_family_dir) -> None:
    import dni
    from dni.errors import Cancelled

    family = dni.load_family(tiny_family_dir / "tiny")
    image = photo()
    seen: list[float] = []
    family.apply(image, strength=0.5, tile=32, progress=lambda f, _s: seen.append(f))
    tiles = len(plan_tiles(*image.shape[:2], 32, 16))
    # Every tile's end is reported (steps inside a tile come between them).
    ends = [f for f in seen if abs(f * tiles - round(f * tiles)) < 1e-9]
    assert ends == [pytest.approx(k / tiles) for k in range(1, tiles + 1)]
    assert seen == sorted(seen) and seen[-1] == 1.0

    calls = []

    def cancel_after_two() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        family.apply(image, strength=0.5, tile=32, cancelled=cancel_after_two,
                     progress=lambda f, _s: seen.append(f))
    assert len(calls) == 3  # checked before every tile, stopped at the third


def test_out_of_memory_halves_the_tile(tiny_family_dir, monkeypatch) -> None:
    import dni

    family = dni.load_family(tiny_family_dir / "tiny")
    image = photo()
    expected = family.apply(image, strength=0.5, tile=128)
    real_forward = family._forward
    sizes: list[int] = []

    def forward(rgb, t):  # noqa: ANN001, ANN202 - stand-in for an allocator failure
        side = t.src[1] - t.src[0]
        sizes.append(side)
        if side > 100:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real_forward(rgb, t)

    monkeypatch.setattr(family, "_forward", forward)
    out = family.apply(image, strength=0.5, tile=128)
    assert sizes[0] == 128 and max(sizes[1:]) < 128
    np.testing.assert_allclose(out.astype(int), expected.astype(int), atol=1)


def test_cancel_stops_inside_a_tile(tiny_family_dir) -> None:
    """A single big tile is not waited for: the check runs before every convolution."""
    import dni
    from dni.errors import Cancelled

    family = dni.load_family(tiny_family_dir / "tiny")
    convs: list[int] = []
    hooks = [m.register_forward_hook(lambda *_: convs.append(1))
             for m in family.model.modules() if isinstance(m, torch.nn.Conv2d)]
    checks: list[int] = []

    def cancel_on_second_check() -> bool:
        checks.append(1)
        return len(checks) >= 3  # 1: before the tile, 2: first conv, 3: second conv

    with pytest.raises(Cancelled):
        family.apply(photo(), strength=0.5, tile=4096, cancelled=cancel_on_second_check)
    assert len(convs) == 1  # of three
    for hook in hooks:
        hook.remove()
    assert family.apply(photo(), strength=0.5).shape == photo().shape  # still usable


def _with_manifest_line(source, target, line: str):  # noqa: ANN001, ANN202
    import shutil

    shutil.copytree(source, target)
    manifest = target / "family.toml"
    manifest.write_text(manifest.read_text().replace("scale = 1", f"scale = 1\n{line}", 1))
    return target


def test_tile_pad_from_the_manifest_sets_the_context(tiny_family_dir, tmp_path) -> None:
    """With no context (tile_pad = 0) the tiny net's 3 px reach shows at tile borders."""
    import dni

    image = photo().astype(np.float32) / 255.0
    bare = dni.load_family(_with_manifest_line(tiny_family_dir / "tiny", tmp_path / "tiny",
                                               "tile_pad = 0"))
    assert bare.manifest.tile_pad == 0
    whole = bare.apply(image, strength=0.4, tile=4096)
    assert np.abs(bare.apply(image, strength=0.4, tile=32) - whole).max() > 1e-3


@pytest.mark.parametrize("value", ["-1", "300", "2.5", '"wide"', "true"])
def test_bad_tile_pad_is_refused(tiny_family_dir, tmp_path, value: str) -> None:
    from dni.errors import FamilyError
    from dni.manifest import load_manifest

    folder = _with_manifest_line(tiny_family_dir / "tiny", tmp_path / "tiny", f"tile_pad = {value}")
    with pytest.raises(FamilyError, match="tile_pad must be a whole number of pixels"):
        load_manifest(folder)


def test_tile_memory_estimate_counts_activations_at_their_resolution() -> None:
    """A U-Net's widest layers run at 1/8 of the resolution; the estimate measures values
    per input pixel instead of trusting channel counts."""
    from dni.archs.denoise import DenoiseUNet
    from dni.family import _largest_activation

    unet = DenoiseUNet(features=8, blocks=1, middle=1)
    # head/enc1 8 ch at 1/2 res: 2 values/px; middle 32 ch at 1/8: 0.5; tail 12 ch at 1/2: 3
    assert _largest_activation(unet, unet.size_multiple) == 3.0
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1))
    assert _largest_activation(plain, 1) == 8.0


def test_progress_moves_inside_a_single_tile(tiny_family_dir) -> None:
    """One big tile used to report only its end (0 %, then 100 %): the bar now follows the
    convolutions the tile has started, in steps the bar can show."""
    import numpy as np

    from dni.family import Family
    from dni.registry import find_family

    family = Family(find_family("tiny", [tiny_family_dir]), device="cpu")
    seen: list[float] = []
    image = np.zeros((40, 48, 3), np.uint8)
    family.apply(image, strength=0.5, tile=512, progress=lambda f, _stage: seen.append(f))
    inside = [f for f in seen if 0 < f < 1]
    assert len(inside) >= 2 and seen == sorted(seen) and seen[-1] == 1.0
