"""Reading a JPEG's quality back: from the file's quantisation tables, and from decoded
pixels (the 8x8 grid and the quantisation steps of its DCT coefficients), on real photos
saved by Pillow at known qualities."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dni import jpeg_quality
from dni.errors import WeightsError

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = [ROOT / "samples" / "astronaut.png", ROOT / "tests" / "data" / "rocket-small.png"]


def _photo(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _saved(pixels: np.ndarray, quality: int, subsampling: int = 2) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def _decoded(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


@pytest.mark.parametrize("quality", [3, 10, 20, 30, 47, 50, 60, 75, 90, 97])
def test_the_files_tables_give_the_quality_it_was_saved_at(tmp_path: Path,
                                                           quality: int) -> None:
    path = tmp_path / f"q{quality}.jpg"
    path.write_bytes(_saved(_photo(PHOTOS[0]), quality))
    assert jpeg_quality.quality_of_file(path) == quality


def test_a_greyscale_jpeg_has_one_table_and_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "grey.jpg"
    Image.fromarray(_photo(PHOTOS[1])).convert("L").save(path, quality=25)
    assert jpeg_quality.quality_of_file(path) == 25


def test_other_formats_have_no_tables(tmp_path: Path) -> None:
    assert jpeg_quality.quality_of_file(PHOTOS[0]) is None


def test_a_table_without_64_steps_is_refused() -> None:
    with pytest.raises(ValueError, match="64 steps"):
        jpeg_quality.quality_from_tables({0: [16, 11, 10]})


@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("quality", [10, 20, 30, 50, 60])
def test_decoded_pixels_give_the_quality_within_two(path: Path, quality: int) -> None:
    read = jpeg_quality.quality_from_pixels(_decoded(_saved(_photo(path), quality)))
    assert read is not None and abs(read - quality) <= 2


@pytest.mark.parametrize("offset", [(0, 3), (5, 0), (3, 7)])
def test_a_jpeg_cropped_after_saving_is_read_at_its_shifted_grid(offset: tuple[int, int]
                                                                 ) -> None:
    pixels = _decoded(_saved(_photo(PHOTOS[0]), 20))[offset[0]:, offset[1]:]
    assert jpeg_quality.quality_from_pixels(pixels) in range(18, 23)


def test_pixels_that_never_were_a_jpeg_or_were_resized_since_give_none() -> None:
    photo = _photo(PHOTOS[0])
    assert jpeg_quality.quality_from_pixels(photo) is None
    resized = Image.fromarray(_decoded(_saved(photo, 20))).resize((200, 200), Image.BICUBIC)
    assert jpeg_quality.quality_from_pixels(np.asarray(resized)) is None


def test_sixteen_bit_and_float_pixels_are_read_like_eight_bit() -> None:
    pixels = _decoded(_saved(_photo(PHOTOS[0]), 30))
    as16 = pixels.astype(np.uint16) * 257
    asfloat = pixels.astype(np.float32) / 255
    assert jpeg_quality.quality_from_pixels(as16) == jpeg_quality.quality_from_pixels(pixels)
    assert jpeg_quality.quality_from_pixels(asfloat) == jpeg_quality.quality_from_pixels(pixels)


def test_blockiness_grows_as_the_quality_drops_and_finds_the_grid() -> None:
    photo = _photo(PHOTOS[0])
    clean = jpeg_quality.blockiness(photo).ratio
    ratios = [jpeg_quality.blockiness(_decoded(_saved(photo, q))).ratio for q in (90, 50, 10)]
    assert clean < 1.1
    assert ratios == sorted(ratios) and ratios[-1] > 1.5
    shifted = jpeg_quality.blockiness(_decoded(_saved(photo, 10))[3:, 6:])
    assert shifted.phase == (5, 2)  # the blocks now start 8 - 3 and 8 - 6 px in


def test_the_files_tables_come_first_then_the_pixels(tmp_path: Path) -> None:
    photo = _photo(PHOTOS[0])
    path = tmp_path / "q40.jpg"
    path.write_bytes(_saved(photo, 40))
    pixels = _decoded(path.read_bytes())
    assert jpeg_quality.estimate_quality(pixels, path) == jpeg_quality.QualityEstimate(
        40, "quantisation tables")
    from_pixels = jpeg_quality.estimate_quality(pixels, PHOTOS[0])  # a PNG: no tables
    assert from_pixels is not None and from_pixels.source == "pixels"
    assert abs(from_pixels.quality - 40) <= 2


def test_auto_refuses_in_plain_words_when_no_jpeg_shows() -> None:
    with pytest.raises(WeightsError, match="no JPEG compression can be read"):
        jpeg_quality.axis_value(_photo(PHOTOS[0]))
