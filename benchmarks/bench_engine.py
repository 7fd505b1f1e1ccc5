"""Engine benchmark (issue 3): interpolation at memory speed, and tiling overhead.

    python benchmarks/bench_engine.py [--quick] [--device D]

Interpolation: a two-member family of ESRGAN x4 RRDBNets (23 blocks, 64 filters, 16.7M
parameters), members written as safetensors and loaded with architecture "auto"
(spandrel). Measured side by side in one run:
  * our new weighting along a slider drag (in-place steps along B - A, an exact lerp
    every EXACT_EVERY moves), and a jump to a new weighting (one exact lerp),
  * a plain torch copy of the same parameters (the memory-bandwidth yardstick),
  * the state-dict loop + load_state_dict that ESRGAN's net_interp.py and chaiNNer do.
Tiling: one untiled forward of a 2048x2048 image vs our tiled, feathered run on the same
image, with a network small enough to run untiled on this machine.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from report import Row, print_rows
from safetensors.torch import save_file

import dni
from dni.device import resolve_device
from dni.tiling import balanced, plan_tiles


def interleaved(fns: list[Callable[[], object]], repeat: int,
                sync: Callable[[], None] = lambda: None) -> list[list[float]]:
    """Seconds per call of each function, `repeat` rounds run interleaved after a warm-up
    so that a busy machine slows them all alike."""
    samples: list[list[float]] = [[] for _ in fns]
    for fn in fns:
        fn()
    sync()
    for _ in range(repeat):
        for fn, out in zip(fns, samples, strict=True):
            start = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - start)
    return samples


def side_by_side(fns: list[Callable[[], object]], repeat: int,
                 sync: Callable[[], None] = lambda: None) -> list[float]:
    """Median seconds per call of each function (see `interleaved`)."""
    return [statistics.median(s) for s in interleaved(fns, repeat, sync)]


def write_rrdb_family(root: Path) -> Path:
    from spandrel.architectures.ESRGAN import ESRGAN as RRDBNet

    folder = root / "rrdb"
    folder.mkdir()
    torch.manual_seed(0)
    base = RRDBNet(num_filters=64, num_blocks=23, scale=4).state_dict()
    tuned = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
             for k, v in base.items()}  # a stand-in for a GAN fine-tune
    for name, sd in (("psnr", base), ("gan", tuned)):
        save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / f"{name}.safetensors"))
    (folder / "family.toml").write_text(
        'name = "rrdb"\ntask = "super-resolve"\narchitecture = "auto"\nscale = 4\n'
        '[[members]]\nlabel = "PSNR"\nfile = "psnr.safetensors"\nposition = 0\n'
        '[[members]]\nlabel = "GAN"\nfile = "gan.safetensors"\nposition = 1\n')
    return folder


def bench_interpolation(device: str, repeat: int) -> list[Row]:
    dev = resolve_device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        family = dni.load_family(write_rrdb_family(Path(tmp)), device=device)
    blender, model = family.blender, family.model
    params = blender.parameter_count
    nbytes = params * 4

    # A slow drag across the slider, as the plugins send it.
    alphas = iter(np.linspace(0.01, 0.99, 10_000).tolist())
    src = torch.randn(params, device=dev)
    dst = torch.empty_like(src)

    # ESRGAN net_interp.py / chaiNNer: loop over the state dicts, then load_state_dict,
    # into a model of their own in the default memory layout (ours is channels_last,
    # which would make their copy slower than it is for them).
    their_model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    net_a = {k: v.contiguous() for k, v in their_model.state_dict().items()}
    net_b = {k: v + 1.0 if v.is_floating_point() else v for k, v in net_a.items()}

    def state_dict_loop() -> None:
        alpha = 0.3
        mixed = {k: (1 - alpha) * v + alpha * net_b[k] for k, v in net_a.items()}
        their_model.load_state_dict(mixed)

    # A jump onto the pair is one exact lerp per group (into buffers of the same size as
    # the live ones, so that the drag's state stays true).
    jump_out = [torch.empty_like(flat) for flat, _ in blender._groups]

    def jump() -> None:
        for (_, stacked), out in zip(blender._groups, jump_out, strict=True):
            torch.lerp(stacked[0], stacked[1], next(alphas), out=out)

    t_ours, t_jump, t_copy, t_loop = side_by_side(
        [lambda: blender.set_weights([1 - (a := next(alphas)), a]), jump,
         lambda: dst.copy_(src), state_dict_loop], repeat, sync)

    bw_ours = 3 * nbytes / t_ours  # reads the live model and B - A, writes the live model
    bw_copy = 2 * nbytes / t_copy  # reads one tensor, writes one
    ratio = bw_ours / bw_copy
    return [
        Row("new weighting, 16.7M-param RRDBNet pair: memory bandwidth",
            f"{t_ours * 1e3:.1f} ms = {bw_ours / 1e9:.2f} GB/s",
            f"torch copy {t_copy * 1e3:.1f} ms = {bw_copy / 1e9:.2f} GB/s",
            f"{ratio:.2f}", ">= 0.70", ratio >= 0.70),
        Row("new weighting vs the net_interp/chaiNNer state-dict loop",
            f"{t_ours * 1e3:.1f} ms", f"{t_loop * 1e3:.1f} ms", f"{t_loop / t_ours:.1f}x faster",
            ">= 10x", t_loop / t_ours >= 10),
        Row("a jump to a new weighting (one exact lerp) vs the state-dict loop",
            f"{t_jump * 1e3:.1f} ms", f"{t_loop * 1e3:.1f} ms", f"{t_loop / t_jump:.1f}x faster",
            "", None),
    ]


def bench_tiling(device: str, size: int, tile: int | None, repeat: int = 9) -> list[Row]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import correlated_states, write_family

    options = {"features": 32, "layers": 6}
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_family(Path(tmp), "conv6", correlated_states(options, 2),
                              options=options)
        family = dni.load_family(folder, device=device)
    rng = np.random.default_rng(0)
    image = rng.random((size, size, 3), dtype=np.float32)
    family.blender.set_weights([0.5, 0.5])

    def untiled() -> None:
        with torch.inference_mode():
            x = torch.from_numpy(image.transpose(2, 0, 1)).unsqueeze(0).to(family.device)
            family.model(x).cpu()

    tile = tile or family.auto_tile()
    tiles = len(plan_tiles(size, size, tile, family.manifest.tile_pad))
    # Seconds-long runs on a shared machine drift by +-15 %: the ratio is the median of
    # each round's tiled/untiled pair, run back to back.
    untiled_s, tiled_s = interleaved(
        [untiled, lambda: family.apply(image, strength=0.5, tile=tile)], repeat)
    t_untiled, t_tiled = statistics.median(untiled_s), statistics.median(tiled_s)
    ratio = statistics.median(t / u for t, u in zip(tiled_s, untiled_s, strict=True))
    whole = family.apply(image, strength=0.5, tile=4096)
    seam = float(np.abs(family.apply(image, strength=0.5, tile=tile) - whole).max())
    return [
        Row(f"tiled inference, {size}x{size} ({tiles} tiles of {balanced(size, tile, 1)}, "
            "feathered)",
            f"{t_tiled:.2f} s", f"one untiled forward {t_untiled:.2f} s",
            f"{ratio:.3f} (median of {repeat} pairs)",
            "<= 1.10", ratio <= 1.10),
        Row("tiled vs untiled output, max difference", f"{seam:.1e}", "0", "", "<= 1e-4",
            seam <= 1e-4),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 1024^2 tiling")
    parser.add_argument("--tile", type=int, help="tile size for the tiled run (default: auto)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {resolve_device(args.device)}")
    print_rows("Interpolation and tiling",
               bench_interpolation(args.device, 5 if args.quick else 20)
               + bench_tiling(args.device, 1024 if args.quick else 2048, args.tile,
                              3 if args.quick else 9))


if __name__ == "__main__":
    main()
