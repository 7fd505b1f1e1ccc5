"""The noise-level estimator (dni.noise_level) on real photos with known synthetic noise,
its per-region map, and the one rule that turns a sigma into a strength."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import photo
from PIL import Image

from dni import noise_level
from dni.errors import FamilyError
from dni.manifest import load_manifest
from dni_client import mixing
from dni_client.errors import MixError
from dni_client.families import FamilyInfo

ROOT = Path(__file__).resolve().parents[1]
# Real photos the repository carries (tests/data, samples/): none of them is a training photo.
PHOTOS = {"astronaut-crop": photo("astronaut-crop.png"), "rocket-small": photo("rocket-small.png"),
          "astronaut": np.asarray(Image.open(ROOT / "samples" / "astronaut.png").convert("RGB"))}


def with_noise(clean: np.ndarray, sigma: float | np.ndarray, seed: int = 0) -> np.ndarray:
    """Float32 in [0, 1] nominal, noise unclipped (sigma in 0-255 units, may vary per pixel)."""
    noise = np.random.default_rng(seed).standard_normal(clean.shape)
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.ndim == 2:
        sigma = sigma[..., None]
    return ((clean.astype(np.float64) + noise * sigma) / 255.0).astype(np.float32)


def saved_8bit(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(PHOTOS))
@pytest.mark.parametrize("sigma", [15, 25, 35, 50])
def test_global_sigma_within_ten_percent_on_real_photos(name: str, sigma: int) -> None:
    found = noise_level.global_sigma(with_noise(PHOTOS[name], sigma))
    assert abs(found - sigma) <= 0.10 * sigma, f"{name}: read {found:.1f} for sigma {sigma}"


@pytest.mark.parametrize("name", sorted(PHOTOS))
@pytest.mark.parametrize("sigma", [15, 25, 35, 50])
def test_an_8bit_file_reads_the_same(name: str, sigma: int) -> None:
    """Rounded and clipped as a saved file; uint8 input is scaled like the engine's."""
    found = noise_level.global_sigma(saved_8bit(with_noise(PHOTOS[name], sigma, seed=1)))
    assert abs(found - sigma) <= 0.10 * sigma, f"{name}: read {found:.1f} for sigma {sigma}"


def test_a_channel_all_near_black_does_not_pull_the_reading_down() -> None:
    """A yellow subject: blue is near 0 everywhere, so clipping ate most of its noise.
    That channel cannot be read and is left out; the others give the sigma."""
    clean = PHOTOS["astronaut"].astype(np.float64)
    yellow = clean.copy()
    yellow[..., 2] = clean[..., 2] * 0.03  # blue squeezed to 0-8
    found = noise_level.global_sigma(saved_8bit(with_noise(yellow, 40, seed=3)))
    assert abs(found - 40) <= 0.10 * 40, f"read {found:.1f} for sigma 40"
    assert noise_level.channel_sigmas(saved_8bit(with_noise(yellow, 40, seed=3)))[2] is None


def test_each_channel_is_measured_on_its_own() -> None:
    clean = PHOTOS["astronaut"]
    noise = np.random.default_rng(2).standard_normal(clean.shape) * np.array([10.0, 25.0, 40.0])
    found = noise_level.channel_sigmas(((clean + noise) / 255.0).astype(np.float32))
    for got, want in zip(found, (10.0, 25.0, 40.0), strict=True):
        assert abs(got - want) <= 0.12 * want


def test_both_estimators_see_more_noise_as_more() -> None:
    clean = PHOTOS["rocket-small"]
    for method in noise_level.ESTIMATORS:
        low, high = (noise_level.global_sigma(with_noise(clean, s), method) for s in (15, 40))
        assert high > 2 * low


def test_a_clean_photo_reads_low_and_grey_or_16bit_images_work() -> None:
    clean = PHOTOS["astronaut"]
    assert noise_level.global_sigma(clean) < 5.0
    grey = clean.mean(axis=2).astype(np.float64)
    noisy16 = np.clip((grey + np.random.default_rng(3).standard_normal(grey.shape) * 20) * 257,
                      0, 65535).astype(np.uint16)
    assert abs(noise_level.global_sigma(noisy16) - 20) <= 2.0


def test_a_flat_saturated_image_reads_zero_not_a_crash() -> None:
    white = np.full((64, 64, 3), 255, np.uint8)
    assert noise_level.global_sigma(white) == 0.0
    assert float(noise_level.sigma_map(white).max()) == 0.0


# -- the map ---------------------------------------------------------------------------------
def ramp(shape: tuple[int, int], low: float = 5.0, high: float = 50.0) -> np.ndarray:
    return np.broadcast_to(np.linspace(low, high, shape[1]), shape)


def test_the_map_follows_noise_that_varies_across_the_image() -> None:
    clean = PHOTOS["astronaut"]
    truth = ramp(clean.shape[:2])
    found = noise_level.sigma_map(with_noise(clean, truth))
    assert found.shape == clean.shape[:2] and found.dtype == np.float32
    thirds = [float(found[:, i * 85:(i + 1) * 85].mean()) for i in range(3)]
    assert thirds[0] < thirds[1] < thirds[2]
    assert float(np.mean(np.abs(found - truth) / truth)) < 0.25
    # The middle of the image, away from the edges the windows cannot centre on:
    middle = slice(64, 192)
    assert np.abs(found[:, middle] - truth[:, middle]).mean() < 0.15 * truth[:, middle].mean()


def test_the_map_is_smooth_without_seams() -> None:
    """No step between neighbouring pixels is half a sigma (a seam between windows
    would be several), and the curvature is tiny everywhere."""
    clean = PHOTOS["astronaut"]
    found = noise_level.sigma_map(with_noise(clean, ramp(clean.shape[:2])))
    for axis in (0, 1):
        steps = np.abs(np.diff(found, axis=axis))
        assert float(steps.max()) < 0.5
        assert float(np.abs(np.diff(found, n=2, axis=axis)).max()) < 0.1


def test_one_sigma_for_noise_that_varies_is_not_the_quietest_part() -> None:
    """The whole-image estimate reads the flattest blocks, all in the quiet part; the one
    sigma a single strength answers is the windows' median there (the ramp's is 27.5)."""
    clean = PHOTOS["astronaut"]
    varying = with_noise(clean, ramp(clean.shape[:2]))
    assert noise_level.global_sigma(varying) < 15
    assert 22 <= noise_level.image_sigma(varying) <= 33
    uniform = with_noise(clean, 25)  # and uniform noise keeps the whole-image estimate
    assert noise_level.image_sigma(uniform) == noise_level.global_sigma(uniform)


def test_uniform_noise_gives_a_nearly_flat_map() -> None:
    clean = PHOTOS["astronaut"]
    found = noise_level.sigma_map(with_noise(clean, 30))
    assert abs(float(found.mean()) - 30) < 3.0
    assert float(found.max() - found.min()) < 0.25 * 30


# -- sigma -> strength: one rule (dni_client.mixing) ---------------------------------------
def test_position_to_strength_is_the_inverse_of_the_axis() -> None:
    positions = [15.0, 25.0, 50.0]
    assert mixing.position_to_strength(15, positions) == 0.0
    assert mixing.position_to_strength(50, positions) == 1.0
    assert mixing.position_to_strength(25, positions) == pytest.approx(10 / 35)
    assert mixing.position_to_strength(5, positions) == 0.0  # clamped: the gentlest there is
    assert mixing.position_to_strength(80, positions) == 1.0
    # the weights at that strength put the blend exactly on the member trained at sigma 25
    weights = mixing.strength_to_weights(mixing.position_to_strength(25, positions), positions)
    assert weights == pytest.approx((0.0, 1.0, 0.0))
    # an axis whose numbers fall (JPEG quality: the gentle end has the high numbers)
    assert mixing.position_to_strength(45, [60.0, 30.0, 10.0]) == pytest.approx(0.3)
    with pytest.raises(MixError):
        mixing.position_to_strength(float("nan"), positions)


def test_the_bundled_denoise_family_says_it_measures_noise() -> None:
    manifest = load_manifest(ROOT / "models" / "denoise")
    assert manifest.axis_measures == "noise-sigma"
    listed = manifest.to_dict()
    assert listed["axis"]["measures"] == "noise-sigma"
    assert FamilyInfo.from_dict(listed).can_estimate
    stylize = load_manifest(ROOT / "models" / "stylize")
    assert stylize.axis_measures is None and "measures" not in stylize.to_dict()["axis"]
    assert not FamilyInfo.from_dict(stylize.to_dict()).can_estimate


def test_a_manifest_with_a_bad_measure_is_refused(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "denoise"
    shutil.copytree(ROOT / "models" / "denoise", folder)
    toml = folder / "family.toml"
    toml.write_text(toml.read_text().replace('measures = "noise-sigma"', "measures = 3"))
    with pytest.raises(FamilyError, match="axis.measures"):
        load_manifest(folder)
