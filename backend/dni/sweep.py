"""Contact sheets: a row of outputs along the strength axis, as in the paper's figures.

The DNI row interpolates the networks; the optional pixel row blends the end members'
outputs instead (the baseline the paper compares with).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 20
GAP = 4
# run(strength, mode) -> the filtered image: a local family's apply, or a job on a server.
Runner = Callable[[float, str], np.ndarray]


def sweep_rows(run: Runner, steps: int, compare_pixel: bool,
               tick: Callable[[], None] | None = None) -> list[tuple[str, list[np.ndarray]]]:
    strengths = np.linspace(0.0, 1.0, steps).tolist()
    rows: list[tuple[str, list[np.ndarray]]] = [("DNI", [])]
    if compare_pixel:
        rows.append(("pixel", []))
    for s in strengths:
        for name, images in rows:
            images.append(run(s, "network" if name == "DNI" else "pixel"))
            if tick:
                tick()
    return rows


def contact_sheet(rows: list[tuple[str, list[np.ndarray]]], strengths: list[float],
                  low: str, high: str) -> Image.Image:
    cells = [[Image.fromarray(_rgb8(a)) for a in images] for _, images in rows]
    cell_w, cell_h = cells[0][0].size
    font = ImageFont.load_default(size=14)
    label_w = 60
    width = label_w + len(strengths) * (cell_w + GAP)
    height = LABEL_HEIGHT * 2 + len(rows) * (cell_h + GAP)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((label_w, 2), f"0 = {low}", fill="black", font=font)
    right = f"1 = {high}"
    draw.text((width - 8 - draw.textlength(right, font=font), 2), right, fill="black", font=font)
    for c, s in enumerate(strengths):
        draw.text((label_w + c * (cell_w + GAP), LABEL_HEIGHT), f"{s:.2f}", fill="black",
                  font=font)
    for r, ((name, _), images) in enumerate(zip(rows, cells, strict=True)):
        top = LABEL_HEIGHT * 2 + r * (cell_h + GAP)
        draw.text((4, top + cell_h // 2), name, fill="black", font=font)
        for c, img in enumerate(images):
            sheet.paste(img, (label_w + c * (cell_w + GAP), top))
    return sheet


def _rgb8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint16:
        array = (array // 257).astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array.astype(np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    return array
