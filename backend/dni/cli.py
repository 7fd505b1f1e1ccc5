"""The `dni` command.

Every failure the user can fix prints one line `dni: error: ...` and exits 1, and where
it can be known before the work (an output that cannot be written, an amount that is not
valid) it comes before the work. Outputs are written next to the output as
`<name>.dni-unfinished-...` and renamed, so a failed, interrupted (Ctrl+C) or terminated
(SIGTERM) run leaves nothing behind (imagefiles.OutputFile).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import DNIError

if TYPE_CHECKING:  # imported where used: `dni families` must start without numpy or torch
    import numpy as np

    from .imagefiles import ImageOutput

# `dni inspect` exit statuses: the verdict of the least correlated pair.
INSPECT_EXIT = {"correlated": 0, "weak": 3, "uncorrelated": 4}


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        message = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _add_server_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--server", metavar="ENDPOINT",
                   help=f"{what} a `dni serve` backend (e.g. tcp://127.0.0.1:5557)")


def _add_family_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", required=True, help="family name (see `dni families`)")
    p.add_argument("--family-path", type=Path, action="append", default=[],
                   help="extra folder to search for families (repeatable)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fast", "fp32", "fp16", "bf16"],
                   help="auto: fp16 on GPUs, fp32 on CPUs; fast: bf16 on CPUs that have it")
    p.add_argument("--tile", type=int, help="tile size in pixels (default: from free memory)")


def _strength(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _add_weighting(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--strength", type=_strength,
                       help="0 = first member .. 1 = last member; auto = read it off the "
                            "image (families whose axis is a noise level)")
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
    _add_server_option(p, "list the families of")
    p.set_defaults(handler=cmd_families)

    p = sub.add_parser("apply", help="filter an image with an interpolated network")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    _add_family_options(p)
    _add_weighting(p)
    p.add_argument("--mask", type=Path, help="greyscale image: apply only where white")
    p.add_argument("--strength-map", type=Path,
                   help="greyscale image: per-pixel strength, black = 0, white = 1; auto = "
                        "read it off the image, region by region (./auto for a file so named)")
    p.add_argument("--mode", choices=["network", "pixel"], default="network",
                   help="pixel = blend the members' outputs instead (the paper's baseline)")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse larger images")
    _add_server_option(p, "run the job on")
    p.set_defaults(handler=cmd_apply, writes=True)

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
    p.set_defaults(handler=cmd_mix, writes=True)

    p = sub.add_parser("sweep", help="contact sheet of outputs along the strength axis")
    p.add_argument("input", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    _add_family_options(p)
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--compare-pixel", action="store_true",
                   help="add a row that blends the end members' outputs (pixel interpolation)")
    _add_server_option(p, "run each strength as a job on")
    p.set_defaults(handler=cmd_sweep, writes=True)

    from .server.commands import register as register_server_commands

    register_server_commands(sub)  # serve, keys, broker
    from .get_commands import register as register_get_commands

    register_get_commands(sub)  # get, remove
    from .finetune_command import register as register_finetune_command

    register_finetune_command(sub)  # finetune
    return parser


def _progress_bar(total: int, description: str):  # noqa: ANN202 - tqdm type
    from tqdm import tqdm

    # disable=None: quiet when stderr is not a terminal (scripts, CI logs).
    return tqdm(total=total, desc=description, unit="%", disable=None, leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")


def _warn(message: str) -> None:
    print(f"dni: warning: {message}", file=sys.stderr)


def _ticker(bar: Any) -> Callable[[float, str], None]:
    def progress(fraction: float, _stage: str) -> None:
        bar.update(round(fraction * 100) - bar.n)

    return progress


def _print_families(listed: list[dict[str, Any]], as_json: bool, empty: str) -> None:
    from dni_client.families import FamilyInfo

    if as_json:
        print(json.dumps(listed, indent=2))
        return
    if not listed:
        print(empty)
    for f in map(FamilyInfo.from_dict, listed):
        print(f"{f.name:16} {f.task:14} x{f.scale}  {f.low_label} -> {f.high_label}  "
              f"[{', '.join(f.labels)}]")


def cmd_families(args: argparse.Namespace) -> int:
    if args.server:
        from .remote import Remote

        with Remote(args.server) as remote:
            listed = remote.families()
        _print_families(listed, args.json, f"the server at {args.server} has no families")
        return 0
    from .manifest import member_file_problems
    from .registry import list_manifests, search_paths

    manifests, problems = list_manifests(search_paths(args.family_path))
    usable = []
    for m in manifests:
        broken = member_file_problems(m)
        if broken:
            problems.append(f"{m.folder}: family {m.name!r}: {broken[0]}")
        else:
            usable.append(m.to_dict())
    _print_families(usable, args.json, "no families installed")
    for line in problems:
        _warn(f"skipped a broken family (not listed, cannot be used): {line}")
    return 0


def _check_amount_options(args: argparse.Namespace) -> None:
    """Exactly one way of saying how strong; checked before any file is read."""
    given = [flag for flag, value in (("--strength", args.strength), ("--weights", args.weights),
                                      ("--preset", args.preset)) if value is not None]
    if args.strength_map is not None and given:
        raise DNIError(f"--strength-map sets the strength pixel by pixel; leave out {given[0]}")
    if args.strength_map is None and not given:
        raise DNIError("say how strong: --strength S, --weights w1,w2,..., --preset NAME "
                       "or --strength-map M.png")


def _amount(args: argparse.Namespace, presets: Sequence[Any], family: str) -> dict[str, Any]:
    """strength= or weights= for the engine; nothing with a strength map (it is the
    strength)."""
    if args.strength_map is not None:
        return {}
    if args.preset is not None:
        from .weighting import find_preset

        preset = find_preset(presets, args.preset, f"family {family!r}")
        return {"strength": preset.strength, "weights": preset.weights}
    return {"strength": args.strength, "weights": args.weights}


def _auto_map(args: argparse.Namespace) -> bool:
    return args.strength_map is not None and str(args.strength_map) == "auto"


def _read_inputs(args: argparse.Namespace, max_pixels: int | None,
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | str | None]:
    """The image, and the mask and strength map if given: each header is checked (size,
    frames, that maps match the image) before anything is decoded."""
    from .imagefiles import read_image, read_unit_map

    image = read_image(args.input, max_pixels, _warn)
    size = image.shape[:2]
    mask = read_unit_map(args.mask, size, "mask") if args.mask else None
    smap = "auto" if _auto_map(args) else \
        read_unit_map(args.strength_map, size, "strength map") if args.strength_map else None
    return image, mask, smap


def _channels(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else int(image.shape[2])


def _apply_local(args: argparse.Namespace, out: ImageOutput) -> np.ndarray:
    from .imaging import DEFAULT_MAX_PIXELS

    max_pixels = args.max_pixels or DEFAULT_MAX_PIXELS
    if args.strength == "auto" or _auto_map(args):
        _check_auto(args)
    image, mask, smap = _read_inputs(args, max_pixels)
    out.plan(image.dtype, _channels(image))
    from .engine import Engine  # torch: only once the inputs are known to be good

    family = Engine(args.device, args.family_path, args.precision, max_pixels).family(args.family)
    amount = _amount(args, family.manifest.presets, family.name)
    amount["strength"], smap = _resolved_auto(family.manifest, image, amount.get("strength"),
                                              smap, args.input)
    with _progress_bar(100, args.family) as bar:
        return family.apply(image, mask=mask, strength_map=smap, mode=args.mode,
                            tile=args.tile, progress=_ticker(bar), **amount)


def _check_auto(args: argparse.Namespace) -> None:
    """Refuse `auto` for a family whose axis measures nothing, before reading anything."""
    from .auto_strength import measure_of
    from .registry import find_family, search_paths

    measure_of(find_family(args.family, search_paths(args.family_path)))


def _resolved_auto(manifest: Any, image: np.ndarray, strength: Any, smap: Any, source: Path
                   ) -> tuple[Any, Any]:
    """`auto` replaced by what the image says, said on stdout."""
    from .auto_strength import describe, resolve

    strength, smap, found = resolve(manifest, image, strength, smap, source)
    if found is not None:
        print(describe(found.to_json()))
    return strength, smap


def _apply_remote(args: argparse.Namespace, out: ImageOutput) -> np.ndarray:
    from .remote import Remote

    with Remote(args.server) as remote:
        limits = [n for n in (args.max_pixels, remote.max_pixels) if n]
        image, mask, smap = _read_inputs(args, min(limits) if limits else None)
        out.plan(image.dtype, _channels(image))
        family = remote.family(args.family)
        amount = _amount(args, family.presets, family.name)
        with _progress_bar(100, args.family) as bar:
            result = remote.run(family, image, mask=mask, strength_map=smap, mode=args.mode,
                                tile=args.tile, progress=_ticker(bar), **amount)
        if remote.last_auto is not None:
            from .auto_strength import describe

            print(describe(remote.last_auto))
        return result


def cmd_apply(args: argparse.Namespace) -> int:
    from .imagefiles import ImageOutput

    _check_amount_options(args)
    with ImageOutput(args.output, _warn) as out:
        result = _apply_remote(args, out) if args.server else _apply_local(args, out)
        out.write_image(result)
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
    from .imagefiles import OutputFile

    if args.output.suffix != ".safetensors":
        raise DNIError(f"{args.output}: the mixed checkpoint must be a .safetensors file")
    if len(args.models) < 2:
        raise DNIError("give at least two weight files to mix")
    with OutputFile(args.output) as out:
        mixed = interpolate([read_state_dict(p) for p in args.models], args.weights)
        tensors = {k: v.contiguous() for k, v in mixed.items()}
        out.write_with(lambda tmp: save_file(tensors, tmp))
    print(f"wrote {args.output} ({len(tensors)} tensors)")
    return 0


def _sweep_runner(args: argparse.Namespace, stack: contextlib.ExitStack,
                  ) -> tuple[Callable[[float, str], np.ndarray], str, str]:
    """run(strength, mode) -> image, and the axis's low and high labels: in this process,
    or each strength as a job on the server."""
    from .imagefiles import read_image
    from .imaging import DEFAULT_MAX_PIXELS

    if args.server:
        from .remote import Remote

        remote = stack.enter_context(Remote(args.server))
        image = read_image(args.input, remote.max_pixels or DEFAULT_MAX_PIXELS, _warn)
        info = remote.family(args.family)
        return (lambda s, mode: remote.run(info, image, strength=s, mode=mode, tile=args.tile),
                info.low_label, info.high_label)
    image = read_image(args.input, DEFAULT_MAX_PIXELS, _warn)
    from .engine import Engine  # torch: only once the input is known to be good

    family = Engine(args.device, args.family_path, args.precision).family(args.family)
    return (lambda s, mode: family.apply(image, strength=s, mode=mode, tile=args.tile),
            family.manifest.low_label, family.manifest.high_label)


def cmd_sweep(args: argparse.Namespace) -> int:
    import numpy as np

    from .imagefiles import ImageOutput
    from .sweep import contact_sheet, sweep_rows

    if not 2 <= args.steps <= 33:
        raise DNIError("--steps must be between 2 and 33")
    with ImageOutput(args.output, _warn) as out, contextlib.ExitStack() as stack:
        run, low, high = _sweep_runner(args, stack)
        rows_count = 2 if args.compare_pixel else 1
        with _progress_bar(args.steps * rows_count, "sweep") as bar:
            rows = sweep_rows(run, args.steps, args.compare_pixel, lambda: bar.update(1))
        strengths = np.linspace(0.0, 1.0, args.steps).tolist()
        out.write_image(np.asarray(contact_sheet(rows, strengths, low, high)))
    print(f"wrote {args.output}")
    return 0


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that it unwinds like Ctrl+C and the
    unfinished output is removed (a BaseException: no `except Exception` swallows it)."""


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (dni.cli.main called from a thread)
        return

    def terminate(_signum: int, _frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Commands that write a file unwind on SIGTERM; `dni serve` keeps its own handling.
    unwinding = _sigterm_unwinds() if getattr(args, "writes", False) else contextlib.nullcontext()
    try:
        with unwinding:
            return int(args.handler(args))
    except DNIError as exc:
        print(f"dni: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dni: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Terminated:
        print("dni: terminated; nothing was written", file=sys.stderr)
        return 128 + signal.SIGTERM


if __name__ == "__main__":
    sys.exit(main())
