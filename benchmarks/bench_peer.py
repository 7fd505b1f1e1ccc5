"""Against a peer (issue 8): the same Compact x4 weights through Real-ESRGAN's tiled
inference (`RealESRGANer`) and through ours, same tile size, measured side by side.

    python benchmarks/bench_peer.py [--size 512] [--tile 256]

Real-ESRGAN is installed for this benchmark only, outside the project's environment:
    .venv/bin/pip install --no-deps --target .bench-peer realesrgan basicsr \\
        opencv-python-headless scipy pyyaml
    .venv/bin/pip install --target .bench-peer requests     # basicsr imports it
Seam error = the largest difference between a tiled run and the same tool's untiled run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from report import Row, print_rows

ROOT = Path(__file__).resolve().parents[1]
PEER_DIR = ROOT / ".bench-peer"


def import_peer():  # noqa: ANN201 - returns the peer's classes
    sys.path.append(str(PEER_DIR))
    # basicsr still imports a torchvision module that was renamed; alias it, here only.
    import torchvision.transforms.functional as functional

    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional)
    from realesrgan import RealESRGANer
    from realesrgan.archs.srvgg_arch import SRVGGNetCompact

    return RealESRGANer, SRVGGNetCompact


def test_image(size: int) -> np.ndarray:
    img = np.asarray(Image.open(ROOT / "samples" / "astronaut.png").convert("RGB"))
    reps = -(-size // img.shape[0])
    return np.ascontiguousarray(np.tile(img, (reps, reps, 1))[:size, :size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print_rows("Against Real-ESRGAN's tiling", compare(args.size, args.tile, args.repeat))


def compare(size: int, tile: int, repeat: int) -> list[Row]:
    import dni

    RealESRGANer, SRVGGNetCompact = import_peer()
    family = dni.load_family("super-resolve", device="cpu")
    family.blender.set_weights([1.0, 0.0])  # the L1 member, as a plain checkpoint
    state = {k: v.clone() for k, v in family.model.state_dict().items()}
    body_convs = sum(1 for k in state if k.startswith("body.") and k.endswith(".weight")
                     and state[k].dim() == 4)
    peer_net = SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=state["body.0.weight"].shape[0],
                               num_conv=body_convs - 2, upscale=4, act_type="prelu")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "member.pth"
        torch.save({"params": state}, path)
        peer_tiled = RealESRGANer(scale=4, model_path=str(path), model=peer_net, tile=tile,
                                  device=torch.device("cpu"))
        peer_whole = RealESRGANer(scale=4, model_path=str(path), model=peer_net, tile=0,
                                  device=torch.device("cpu"))
    image = test_image(size)
    bgr = np.ascontiguousarray(image[:, :, ::-1])

    def peer(upsampler) -> np.ndarray:  # noqa: ANN001
        return upsampler.enhance(bgr, outscale=4)[0][:, :, ::-1]

    def ours(t: int) -> np.ndarray:
        return family.apply(image, weights=[1.0, 0.0], tile=t)

    times: dict[str, list[float]] = {"peer": [], "ours": []}
    for _ in range(repeat):  # interleaved, so a busy machine slows both alike
        for name, fn in (("peer", lambda: peer(peer_tiled)), ("ours", lambda: ours(tile))):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    peer_seam = np.abs(peer(peer_tiled).astype(int) - peer(peer_whole).astype(int)).max()
    our_seam = np.abs(ours(tile).astype(int) - ours(4096).astype(int)).max()
    t_peer, t_ours = (statistics.median(times[k]) for k in ("peer", "ours"))
    params = sum(v.numel() for v in state.values())
    return [Row(f"Compact x4 ({params} params) {size}x{size} -> {4 * size}x{4 * size}, "
                f"tiles of {tile}: time, seam error (max diff to untiled, of 255)",
                f"{t_ours:.2f} s, seam {our_seam}",
                f"RealESRGANer {t_peer:.2f} s, seam {peer_seam}",
                f"{t_peer / t_ours:.2f}x faster", "faster and seamless (<= 1)",
                t_ours < t_peer and our_seam <= 1)]


if __name__ == "__main__":
    main()
