"""Unpack training photos and style paintings from packages into models/.data/.

Nothing is downloaded at run time of the project: this script is run once by whoever
trains. It uses `apt-get download` + `dpkg -x` (Debian opencv-doc, mate-backgrounds,
lomiri-wallpapers-16.04/-20.04, plasma-workspace-wallpapers) and scikit-image's bundled
data when that package is importable.

    python -m models.recipes.data          # unpack + build models/.data/images/
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".data"
IMAGES = DATA / "images"
# Less-shrunk copies of the large training photos (images/train-large/): sides up to
# LARGE_SIDE instead of 1000, so the denoise recipe can see their detail at a second scale.
LARGE_SIDE = 2000
STYLES = DATA / "styles"

_OPENCV = "usr/share/doc/opencv-doc/examples/data"
_MATE = "usr/share/backgrounds/mate"

# Photos used for training (colour, natural content).
OPENCV_TRAIN = ["fruits.jpg", "building.jpg", "home.jpg", "squirrel_cls.jpg", "aloeL.jpg",
                "leuvenA.jpg", "graf1.png", "apple.jpg", "orange.jpg", "messi5.jpg",
                "HappyFish.jpg", "stuff.jpg", "smarties.png", "board.jpg", "rubberwhale1.png",
                "basketball1.png", "aero1.jpg", "ela_original.jpg",
                ]
MATE_TRAIN = ["Aqua.jpg", "Blinds.jpg", "Dune.jpg", "FreshFlower.jpg", "Garden.jpg",
              "GreenMeadow.jpg", "RainDrops.jpg", "Storm.jpg", "TwoWings.jpg", "Wood.jpg"]
SKIMAGE_TRAIN = ["chelsea.png", "rocket.jpg", "motorcycle_left.png", "astronaut.png"]
# Camera photos from Ubuntu Touch's wallpaper sets (Debian lomiri-wallpapers-*, CC BY-SA);
# the rendered and abstract ones in those packages are left out.
_LOMIRI = "usr/share/backgrounds"
LOMIRI_TRAIN = {
    "lomiri-wallpapers-16.04": [
        "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg",
        "Picture_0B_by_freespace.jpg", "Picture_1A_by_freespace.jpg",
        "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg",
        "analogpattern_by_Peter_Nerlich.jpg", "free_by_Peter_Nerlich.jpg",
        "friends_by_Aitzol_Berasategi.jpg", "greentock_by_Peter_Nerlich.jpg",
        "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg"],
    "lomiri-wallpapers-20.04": ["Kleiber_by_Lukas_Baubkus.jpg"],
}
# The camera photos among KDE Plasma's wallpapers (Debian plasma-workspace-wallpapers).
_PLASMA = "usr/share/wallpapers"
PLASMA_TRAIN = ["BytheWater", "ColdRipple", "ColorfulCups", "EveningGlow", "FallenLeaf",
                "Grey", "OneStandsOut", "Path"]

# Held out from every training run; the report evaluates on these.
VALIDATION = {"opencv": ["baboon.jpg", "butterfly.jpg"],
              "mate": ["LadyBird.jpg", "YellowFlower.jpg"],
              "skimage": ["coffee.png"]}

STYLE_FILES = {"starry_night": ("opencv-doc", f"{_OPENCV}/starry_night.jpg"),
               "elephants": ("mate-backgrounds", f"{_MATE}/abstract/Elephants.jpg"),
               "graffiti": ("opencv-doc", f"{_OPENCV}/graf1.png")}


def _unpack(package: str) -> Path:
    target = DATA / "pkg"
    marker = DATA / f".{package}.done"
    if marker.exists():
        return target
    debs = DATA / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{package}_*.deb")):
        subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
    deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
    subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
    marker.touch()
    return target


def _prepare(img: Image.Image, max_side: int = 1000) -> Image.Image:
    """RGB, and large camera photos halved (or more) so JPEG noise shrinks below sigma 15."""
    img = img.convert("RGB")
    while max(img.size) > max_side:
        img = img.resize((img.width // 2, img.height // 2), Image.BICUBIC)
    return img


def save_photo(img: Image.Image, split: str, name: str, root: Path = IMAGES) -> None:
    """`root/<split>/<name>.png`; a training photo over 1000 px also goes to train-large/."""
    small = _prepare(img)
    small.save(root / split / f"{name}.png")
    if split == "train":
        large = _prepare(img, max_side=LARGE_SIDE)
        if large.size != small.size:
            large.save(root / "train-large" / f"{name}.png")


def build() -> None:
    pkg = _unpack("opencv-doc")
    _unpack("mate-backgrounds")
    for folder in (IMAGES / "train", IMAGES / "train-large", IMAGES / "val", STYLES):
        folder.mkdir(parents=True, exist_ok=True)
    # (split, source file, name in images/<split>/)
    sources: list[tuple[str, Path, str]] = []

    def add(split: str, path: Path, name: str | None = None) -> None:
        sources.append((split, path, name or path.stem))

    for name in OPENCV_TRAIN:
        add("train", pkg / _OPENCV / name)
    for name in MATE_TRAIN:
        add("train", pkg / _MATE / "nature" / name)
    for package, names in LOMIRI_TRAIN.items():
        root = _unpack(package)
        for name in names:
            add("train", root / _LOMIRI / name)
    plasma = _unpack("plasma-workspace-wallpapers") / _PLASMA
    for name in PLASMA_TRAIN:
        # Each wallpaper comes in several sizes (files named WxH.jpg); take the largest.
        sizes = sorted((plasma / name / "contents" / "images").glob("*.jpg"),
                       key=lambda f: f.stat().st_size)
        if not sizes:
            print(f"skip (missing) {plasma / name}")
            continue
        add("train", sizes[-1], f"plasma-{name}")
    for name in VALIDATION["opencv"]:
        add("val", pkg / _OPENCV / name)
    for name in VALIDATION["mate"]:
        add("val", pkg / _MATE / "nature" / name)
    try:
        import skimage

        sk = Path(skimage.__file__).parent / "data"
        for name in SKIMAGE_TRAIN:
            add("train", sk / name)
        for name in VALIDATION["skimage"]:
            add("val", sk / name)
    except ImportError:
        print("scikit-image not installed: training without its sample photos")
    for split, path, name in sources:
        if not path.exists():
            print(f"skip (missing) {path}")
            continue
        save_photo(Image.open(path), split, name)
    for style, (_, rel) in STYLE_FILES.items():
        _prepare(Image.open(pkg / rel), max_side=800).save(STYLES / f"{style}.png")
    print(f"train {len(list((IMAGES / 'train').glob('*.png')))} images "
          f"(+{len(list((IMAGES / 'train-large').glob('*.png')))} at up to {LARGE_SIDE} px), "
          f"val {len(list((IMAGES / 'val').glob('*.png')))}, styles {len(STYLE_FILES)}")


def to_tensor(img: Image.Image) -> torch.Tensor:
    """HWC uint8 PIL -> 1x3xHxW float in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_image(t: torch.Tensor) -> Image.Image:
    arr = t.detach().clamp(0, 1).squeeze(0).permute(1, 2, 0).mul(255).round().byte().numpy()
    return Image.fromarray(arr)


def load_folder(folder: Path, min_side: int = 0) -> list[torch.Tensor]:
    """Every PNG in a folder as a 3xHxW uint8 tensor (memory-light for random crops)."""
    out = []
    for path in sorted(folder.glob("*.png")):
        arr = np.asarray(Image.open(path).convert("RGB"))
        if min(arr.shape[:2]) >= min_side:
            out.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
    return out


def smoke_images(count: int = 3, size: int = 96, seed: int = 0) -> list[torch.Tensor]:
    """Tiny synthetic images (smooth gradients + edges + texture) for --smoke runs."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = []
    for _ in range(count):
        f = torch.rand(3, 3, generator=g) * 8
        img = torch.stack([0.5 + 0.4 * torch.sin(f[c, 0] * xs + f[c, 1] * ys + f[c, 2])
                           for c in range(3)])
        img = img + 0.1 * torch.rand(3, size, size, generator=g)
        out.append((img.clamp(0, 1) * 255).round().to(torch.uint8))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clean", action="store_true", help="rebuild images/ from scratch")
    args = parser.parse_args()
    if args.clean and IMAGES.exists():
        shutil.rmtree(IMAGES)
    build()


if __name__ == "__main__":
    main()
