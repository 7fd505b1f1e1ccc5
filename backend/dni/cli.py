"""The `dni` command.

Every failure the user can fix prints one line `dni: error: ...` and exits 1; outputs
are written to a temporary file and renamed, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import DNIError

# `dni inspect` exit statuses: the verdict of the least correlated pair.
INSPECT_EXIT = {"correlated": 0, "weak": 3, "uncorrelated": 4}


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        message = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _add_family_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", required=True, help="family name (see `dni families`)")
    p.add_argument("--family-path", type=Path, action="append", default=[],
                   help="extra folder to search for families (repeatable)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fast", "fp32", "fp16", "bf16"],
                   help="auto: fp16 on GPUs, fp32 on CPUs; fast: bf16 on CPUs that have it")
    p.add_argument("--tile", type=int, help="tile size in pixels (default: from free memory)")


def _add_weighting(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--strength", type=float, help="0 = first member .. 1 = last member")
    group.add_argument("--weights", type=_floats, help="one weight per member, summing to 1")
    group.add_argument("--preset", help="a preset named in the family's manifest")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dni", description="Deep Network Interpolation "
                                     "filters: blend correlated networks, then run them.")
    parser.add_argument("--version", action="version", version=f"dni {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("families", help="list the installed model families")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--family-path", type=Path, action="append", default=[])
    p.set_defaults(handler=cmd_families)

    p = sub.add_parser("apply", help="filter an image with an interpolated network")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    _add_family_options(p)
    _add_weighting(p)
    p.add_argument("--mask", type=Path, help="greyscale image: apply only where white")
    p.add_argument("--strength-map", type=Path,
                   help="greyscale image: per-pixel strength, black = 0, white = 1")
    p.add_argument("--mode", choices=["network", "pixel"], default="network",
                   help="pixel = blend the members' outputs instead (the paper's baseline)")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse larger images")
    p.add_argument("--server", metavar="ENDPOINT",
                   help="run on a `dni serve` backend instead of in this process")
    p.set_defaults(handler=cmd_apply)

    p = sub.add_parser("inspect", help="filter correlation between models (paper eq. 3)")
    p.add_argument("models", nargs="*", type=Path, help="weight files; the first is the reference")
    p.add_argument("--family", help="inspect an installed family's members instead")
    p.add_argument("--family-path", type=Path, action="append", default=[])
    p.add_argument("--layers", action="store_true", help="print every layer, not a summary")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_inspect)

    p = sub.add_parser("mix", help="write an interpolated checkpoint")
    p.add_argument("models", nargs="+", type=Path)
    p.add_argument("--weights", type=_floats, required=True)
    p.add_argument("-o", "--output", type=Path, required=True, help="a .safetensors file")
    p.set_defaults(handler=cmd_mix)

    p = sub.add_parser("sweep", help="contact sheet of outputs along the strength axis")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    _add_family_options(p)
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--compare-pixel", action="store_true",
                   help="add a row that blends the end members' outputs (pixel interpolation)")
    p.set_defaults(handler=cmd_sweep)

    from .server.commands import register as register_server_commands

    register_server_commands(sub)  # serve, keys, broker
    return parser


def _progress_bar(total: int, description: str):  # noqa: ANN202 - tqdm type
    from tqdm import tqdm

    # disable=None: quiet when stderr is not a terminal (scripts, CI logs).
    return tqdm(total=total, desc=description, unit="%", disable=None, leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")


def cmd_families(args: argparse.Namespace) -> int:
    from .registry import list_manifests, search_paths

    manifests, problems = list_manifests(search_paths(args.family_path))
    if args.json:
        print(json.dumps([m.to_dict() for m in manifests], indent=2))
    else:
        if not manifests:
            print("no families installed")
        for m in manifests:
            members = ", ".join(x.label for x in m.members)
            print(f"{m.name:16} {m.task:14} x{m.scale}  {m.low_label} -> {m.high_label}  "
                  f"[{members}]")
    for line in problems:
        print(f"dni: warning: {line}", file=sys.stderr)
    return 0


def _weighting(args: argparse.Namespace, manifest) -> dict:  # noqa: ANN001
    if args.preset is not None:
        from .weighting import find_preset

        preset = find_preset(manifest.presets, args.preset, f"family {manifest.name!r}")
        return {"strength": preset.strength, "weights": preset.weights}
    if args.strength is None and args.weights is None and args.strength_map is None:
        raise DNIError("say how strong: --strength S, --weights w1,w2,..., --preset NAME "
                       "or --strength-map M.png")
    return {"strength": args.strength, "weights": args.weights}


def cmd_apply(args: argparse.Namespace) -> int:
    from .imagefiles import check_writable, read_image, read_unit_map, write_image

    check_writable(args.output)
    image = read_image(args.input)
    mask = read_unit_map(args.mask) if args.mask else None
    strength_map = read_unit_map(args.strength_map) if args.strength_map else None
    if args.server:
        from .remote import run_remote

        result = run_remote(args, image, mask, strength_map)
    else:
        from .engine import Engine
        from .imaging import DEFAULT_MAX_PIXELS

        engine = Engine(args.device, args.family_path, args.precision,
                        args.max_pixels or DEFAULT_MAX_PIXELS)
        family = engine.family(args.family)
        weighting = _weighting(args, family.manifest)
        with _progress_bar(100, args.family) as bar:
            def progress(fraction: float, _stage: str) -> None:
                bar.update(round(fraction * 100) - bar.n)

            result = family.apply(image, mask=mask, strength_map=strength_map, mode=args.mode,
                                  tile=args.tile, progress=progress, **weighting)
    write_image(args.output, result)
    print(f"wrote {args.output} ({result.shape[1]}x{result.shape[0]})")
    return 0


def _inspect_inputs(args: argparse.Namespace) -> tuple[list, list[str]]:
    from .checkpoints import read_state_dict

    if args.family:
        from .family import Family
        from .registry import find_family, search_paths

        manifest = find_family(args.family, search_paths(args.family_path))
        family = Family(manifest, device="cpu")
        labels = [m.label for m in manifest.members]
        states = []
        for i in range(len(labels)):
            model = family.model_at(weights=[float(i == j) for j in range(len(labels))])
            states.append({k: v.clone() for k, v in model.state_dict().items()})
        return states, labels
    if len(args.models) < 2:
        raise DNIError("give at least two weight files, or --family NAME")
    return [read_state_dict(p) for p in args.models], [str(p) for p in args.models]


def cmd_inspect(args: argparse.Namespace) -> int:
    from .correlation import FAIL_THRESHOLD, GOOD_THRESHOLD, correlation_report

    states, labels = _inspect_inputs(args)
    reports = [correlation_report(states[0], sd, (labels[0], label))
               for sd, label in zip(states[1:], labels[1:], strict=True)]
    worst = min(reports, key=lambda r: r.median)
    if args.json:
        print(json.dumps({"reference": labels[0], "verdict": worst.verdict, "pairs": [
            {"model": label, "median": r.median, "minimum": r.minimum, "verdict": r.verdict,
             "layers": [vars(layer) for layer in r.layers]}
            for label, r in zip(labels[1:], reports, strict=True)]}, indent=2))
    else:
        print(f"filter correlation (paper eq. 3) against {labels[0]}")
        for label, report in zip(labels[1:], reports, strict=True):
            print(f"\n{label}: median {report.median:.3f}, min {report.minimum:.3f} "
                  f"-> {report.verdict}")
            shown = report.layers if args.layers else sorted(report.layers,
                                                             key=lambda x: x.median)[:5]
            if not args.layers:
                print("  least correlated layers:")
            for layer in shown:
                print(f"  {layer.name:48} {layer.filters:5d} filters  median "
                      f"{layer.median:6.3f}  min {layer.minimum:6.3f}")
        print(f"\nverdict: {worst.verdict} (the paper saw >= {GOOD_THRESHOLD} for pairs that "
              f"interpolate well, < {FAIL_THRESHOLD} for failures)")
    return INSPECT_EXIT[worst.verdict]


def cmd_mix(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from .blend import interpolate
    from .checkpoints import read_state_dict
    from .imagefiles import atomic_write_bytes

    if args.output.suffix != ".safetensors":
        raise DNIError(f"{args.output}: the mixed checkpoint must be a .safetensors file")
    if not args.output.parent.is_dir():
        raise DNIError(f"{args.output.parent}: output folder does not exist")
    if len(args.models) < 2:
        raise DNIError("give at least two weight files to mix")
    mixed = interpolate([read_state_dict(p) for p in args.models], args.weights)
    tensors = {k: v.contiguous() for k, v in mixed.items()}
    atomic_write_bytes(args.output, lambda tmp: save_file(tensors, tmp))
    print(f"wrote {args.output} ({len(tensors)} tensors)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import numpy as np

    from .engine import Engine
    from .imagefiles import check_writable, read_image, write_image
    from .sweep import contact_sheet, sweep_rows

    check_writable(args.output)
    if not 2 <= args.steps <= 33:
        raise DNIError("--steps must be between 2 and 33")
    image = read_image(args.input)
    family = Engine(args.device, args.family_path, args.precision).family(args.family)
    rows_count = 2 if args.compare_pixel else 1
    with _progress_bar(args.steps * rows_count, "sweep") as bar:
        rows = sweep_rows(family, image, args.steps, args.compare_pixel, lambda: bar.update(1))
    strengths = np.linspace(0.0, 1.0, args.steps).tolist()
    sheet = contact_sheet(rows, strengths, family.manifest.low_label, family.manifest.high_label)
    write_image(args.output, np.asarray(sheet))
    print(f"wrote {args.output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except DNIError as exc:
        print(f"dni: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dni: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
