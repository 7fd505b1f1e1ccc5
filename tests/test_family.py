"""Family.apply: formats, alpha, regions, the pixel baseline, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import photo

import dni
from dni.errors import DNIError, FamilyError, ImageError, WeightsError


@pytest.fixture(scope="module")
def tiny(tiny_family_dir):
    return dni.load_family(tiny_family_dir / "tiny")


def as_float(img: np.ndarray) -> np.ndarray:
    if img.dtype in (np.uint8, np.uint16):
        return img.astype(np.float32) / np.iinfo(img.dtype).max
    return img.astype(np.float32)


def test_strength_ends_are_the_members(tiny) -> None:
    img = photo()
    low, high = tiny.apply(img, strength=0.0), tiny.apply(img, strength=1.0)
    assert np.array_equal(low, tiny.apply(img, weights=[1, 0]))
    assert np.array_equal(high, tiny.apply(img, weights=[0, 1]))
    assert np.abs(low.astype(int) - high.astype(int)).mean() > 1.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float16, np.float32])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_dtypes_and_channels_round_trip(tiny, dtype, channels) -> None:
    rgb = as_float(photo())
    planes = {1: rgb.mean(axis=2, keepdims=True), 3: rgb,
              4: np.concatenate([rgb, np.linspace(0, 1, rgb.shape[1])[None, :, None]
                                 .repeat(rgb.shape[0], 0)], axis=2)}[channels]
    if dtype in (np.uint8, np.uint16):
        peak = np.iinfo(dtype).max
        img = np.round(planes * peak).astype(dtype)
    else:
        img = planes.astype(dtype)
    out = tiny.apply(img, strength=0.3)
    assert out.dtype == dtype and out.shape == img.shape
    if channels == 4:  # alpha is carried over untouched
        assert np.array_equal(out[..., 3], img[..., 3])
    if channels == 3:  # every format gives the same picture, up to quantisation
        reference = as_float(tiny.apply(photo(), strength=0.3))
        # float results are not clamped (HDR layers), integer ones must be
        assert np.abs(np.clip(as_float(out), 0, 1) - reference).max() <= 2.5 / 255


def test_two_dimensional_grey_stays_two_dimensional(tiny) -> None:
    grey = photo()[..., 1]
    out = tiny.apply(grey, strength=0.5)
    assert out.shape == grey.shape and out.dtype == np.uint8


def test_super_resolution_scales_image_and_alpha(tiny_family_dir) -> None:
    family = dni.load_family(tiny_family_dir / "tiny-x2")
    rgba = np.dstack([photo(), np.full(photo().shape[:2], 200, np.uint8)])
    rgba[:10, :10, 3] = 0
    out = family.apply(rgba, strength=0.5)
    assert out.shape == (rgba.shape[0] * 2, rgba.shape[1] * 2, 4)
    assert out[:16, :16, 3].max() == 0 and out[-8:, -8:, 3].min() == 200


def test_mask_limits_the_effect_and_keeps_soft_edges(tiny) -> None:
    img = photo()
    full = tiny.apply(img, strength=1.0).astype(np.float32)
    mask = np.zeros(img.shape[:2], np.float32)
    mask[:, 64:] = 1.0
    mask[:, 60:64] = 0.5  # a soft edge
    out = tiny.apply(img, strength=1.0, mask=mask).astype(np.float32)
    assert np.array_equal(out[:, :60], img[:, :60].astype(np.float32))  # untouched, exactly
    assert np.abs(out[:, 64:] - full[:, 64:]).max() <= 1
    expected_edge = 0.5 * img[:, 60:64] + 0.5 * full[:, 60:64]
    assert np.abs(out[:, 60:64] - expected_edge).max() <= 1


def test_constant_strength_map_equals_scalar_strength(tiny) -> None:
    img = photo()
    smap = np.full(img.shape[:2], 0.7, np.float32)
    assert np.abs(tiny.apply(img, strength_map=smap).astype(int)
                  - tiny.apply(img, strength=0.7).astype(int)).max() <= 1


def test_strength_map_regions_get_their_own_strength(tiny) -> None:
    """Paper Fig. 6: weak on one region, strong on another."""
    img = photo()
    smap = np.zeros(img.shape[:2], np.float32)
    smap[:, 64:] = 1.0
    out = tiny.apply(img, strength_map=smap, tile=32).astype(int)
    weak, strong = tiny.apply(img, strength=0.0).astype(int), tiny.apply(img, strength=1.0)
    assert np.abs(out[:, :64] - weak[:, :64]).max() <= 1
    assert np.abs(out[:, 64:] - strong[:, 64:].astype(int)).max() <= 1


def test_strength_map_skips_tiles_where_a_level_is_unused(tiny, monkeypatch) -> None:
    img = photo()
    smap = np.zeros(img.shape[:2], np.float32)
    smap[:, 96:] = 1.0  # only the right quarter is strong
    forwards: list[tuple[int, ...]] = []
    real = tiny._forward

    def counting(image, t):  # noqa: ANN001, ANN202
        forwards.append(t.src)
        return real(image, t)

    monkeypatch.setattr(tiny, "_forward", counting)
    progress: list[float] = []
    tiny.apply(img, strength_map=smap, tile=32, progress=lambda f, _s: progress.append(f))
    # 16 tiles x 5 levels; level 0 is used left of column 96 plus the blending band,
    # level 1 right of it; the three middle levels are never used
    assert progress[-1] == 1.0
    assert 16 <= len(forwards) <= 16 + 8


def test_pixel_mode_blends_member_outputs(tiny) -> None:
    img = photo().astype(np.float32) / 255
    a, b = tiny.apply(img, strength=0.0), tiny.apply(img, strength=1.0)
    out = tiny.apply(img, strength=0.25, mode="pixel")
    np.testing.assert_allclose(out, 0.75 * a + 0.25 * b, atol=1e-5)
    assert np.abs(out - tiny.apply(img, strength=0.25)).max() > 1e-3  # DNI differs


def test_three_members_weights_and_strength(tiny_family_dir) -> None:
    family = dni.load_family(tiny_family_dir / "tiny3")
    img = photo()
    middle_member = family.apply(img, weights=[0, 1, 0])
    assert np.array_equal(family.apply(img, strength=(25 - 15) / 35), middle_member)
    mixed = family.apply(img, weights=[0.2, 0.3, 0.5])
    assert mixed.shape == img.shape


@pytest.mark.parametrize("kwargs, error, message", [
    ({"strength": 1.5}, WeightsError, "between 0 and 1"),
    ({"weights": [0.7, 0.7]}, WeightsError, "sum to 1"),
    ({"weights": [1.2, -0.2]}, WeightsError, "negative"),
    ({}, WeightsError, "either a strength or weights"),
    ({"strength": 0.5, "weights": [0.5, 0.5]}, WeightsError, "either a strength or weights"),
    ({"strength": 0.5, "mask": np.ones((5, 5), np.float32)}, ImageError, "mask is 5x5"),
    ({"strength_map": np.full((128, 128), 2.0, np.float32)}, ImageError, "between 0 and 1"),
    ({"strength": 0.5, "mode": "magic"}, DNIError, "mode must be"),
    ({"strength": 0.5, "tile": 8}, ImageError, "tile size"),
])
def test_bad_arguments_get_one_clear_error(tiny, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        tiny.apply(photo(), **kwargs)


@pytest.mark.parametrize("image, message", [
    (np.zeros((4, 4, 2), np.uint8), "expected an HxW"),
    (np.zeros((4, 4, 3), np.int32), "unsupported pixel type"),
    (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
    (np.zeros((0, 4, 3), np.uint8), "empty"),
])
def test_bad_images_are_refused(tiny, image, message) -> None:
    with pytest.raises(ImageError, match=message):
        tiny.apply(image, strength=0.5)


def test_image_over_the_pixel_limit(tiny_family_dir) -> None:
    engine = dni.Engine("cpu", [tiny_family_dir], max_pixels=100 * 100)
    with pytest.raises(ImageError, match="over the limit"):
        engine.run("tiny", np.zeros((101, 100, 3), np.uint8), strength=0.5)


def test_unknown_and_unsafe_family_names(tiny_family_dir) -> None:
    engine = dni.Engine("cpu", [tiny_family_dir])
    with pytest.raises(FamilyError, match="unknown family 'nope'.*tiny"):
        engine.run("nope", photo(), strength=0.5)
    with pytest.raises(FamilyError, match="not a valid family name"):
        engine.run("../tiny", photo(), strength=0.5)


def test_corrupt_and_missing_weights(tiny_family_dir, tmp_path) -> None:
    import shutil

    broken = tmp_path / "tiny"
    shutil.copytree(tiny_family_dir / "tiny", broken)
    (broken / "m1.safetensors").write_bytes(b"not really a safetensors file")
    with pytest.raises(FamilyError, match="m1.safetensors: cannot read weights"):
        dni.load_family(broken)
    (broken / "m1.safetensors").unlink()
    with pytest.raises(FamilyError, match="m1.safetensors: weight file not found"):
        dni.load_family(broken)


def test_pickled_checkpoints_are_never_executed(tmp_path) -> None:
    """A .pth whose pickle would run code is refused by weights_only loading."""
    import pickle

    from dni.checkpoints import read_state_dict

    class Exploit:
        def __reduce__(self):  # noqa: ANN204
            return (open, (str(tmp_path / "pwned"), "w"))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"w": Exploit()}))
    with pytest.raises(FamilyError, match="cannot read weights"):
        read_state_dict(path)
    assert not (tmp_path / "pwned").exists()


def test_engine_keeps_families_warm(tiny_family_dir) -> None:
    engine = dni.Engine("cpu", [tiny_family_dir])
    assert engine.family("tiny") is engine.family("tiny")
    names = [f["name"] for f in engine.families()]
    assert {"tiny", "tiny3", "tiny-x2", "identity"} <= set(names)


def test_super_resolution_outside_the_mask_is_the_bicubic_input(tiny_family_dir) -> None:
    """Strips are resized with context: the same as resizing the whole image at once."""
    import torch
    import torch.nn.functional as F

    family = dni.load_family(tiny_family_dir / "tiny-x2")
    img = photo()
    mask = np.zeros(img.shape[:2], np.float32)
    mask[40:80, 40:80] = 1.0
    out = family.apply(img, strength=0.5, mask=mask, tile=32)  # many strips and tiles
    whole = F.interpolate(torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None],
                          scale_factor=2, mode="bicubic", align_corners=False)[0]
    expected = np.clip(whole.permute(1, 2, 0).numpy() * 255 + 0.5, 0, 255).astype(np.uint8)
    outside = np.ones(out.shape[:2], bool)
    outside[70:170, 70:170] = False  # the mask, its soft resized edge and some margin
    assert np.abs(out[outside].astype(int) - expected[outside].astype(int)).max() <= 1
    assert np.abs(out[90:150, 90:150].astype(int) - expected[90:150, 90:150]).mean() > 1


def test_reduced_precision_on_the_cpu(tiny) -> None:
    from dni.device import bf16_fast_on_cpu

    with pytest.raises(DNIError, match="fp16 is for GPUs"):
        tiny.apply(photo(), strength=0.5, precision="fp16")
    exact = tiny.apply(photo(), strength=0.5).astype(int)
    fast = tiny.apply(photo(), strength=0.5, precision="bf16").astype(int)
    # bfloat16 keeps 8 bits of mantissa: within a few levels of 255
    assert np.abs(fast - exact).mean() < 1.0 and np.abs(fast - exact).max() <= 8
    same = tiny.apply(photo(), strength=0.5, precision="fast").astype(int)
    if bf16_fast_on_cpu():
        assert np.array_equal(same, fast)
    else:  # no native bf16 here: "fast" stays float32
        assert np.array_equal(same, exact)
