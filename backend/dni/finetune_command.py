"""The `dni finetune` subcommand: `register(subparsers)` adds it to the `dni` parser.

The work is in finetune.py; this module turns arguments into a Request, shows progress
and says how it ended. Interrupted runs exit 130 (Ctrl+C) or 143 (SIGTERM) after saying
where the checkpoint is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .errors import DNIError

EFFECT_FLAGS = ("--noise", "--jpeg", "--blur", "--pairs")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "finetune", help="fine-tune a network into a new two-member family (the paper's way)",
        description="Fine-tune a copy of BASE towards a new effect and install BASE and the "
                    "copy as a family whose slider goes from one to the other.")
    p.add_argument("base", metavar="BASE",
                   help="FAMILY:MEMBER of an installed family, a member file in a family "
                        "folder, or a .pth/.safetensors checkpoint spandrel recognises")
    p.add_argument("--name", required=True, help="the new family's name")
    p.add_argument("--images", type=Path, metavar="DIR", help="clean photos to train on")
    p.add_argument("--noise", type=float, metavar="SIGMA",
                   help="learn to remove Gaussian noise of this sigma (0-255 scale)")
    p.add_argument("--jpeg", type=float, metavar="QUALITY",
                   help="learn to remove JPEG artefacts of this quality (1-95)")
    p.add_argument("--blur", type=float, metavar="SIGMA",
                   help="learn to undo a Gaussian blur of this sigma (pixels)")
    p.add_argument("--pairs", type=Path, nargs=2, metavar=("INPUT_DIR", "TARGET_DIR"),
                   help="learn from example pairs: images of the same name in both folders")
    p.add_argument("--minutes", type=float,
                   help="training time (default 10, or until --steps when only that is given)")
    p.add_argument("--steps", type=int, help="training steps (stops at whichever ends first)")
    p.add_argument("--device", default="auto", help="auto (default: a GPU when present), cpu, "
                                                    "cuda, cuda:N or mps")
    p.add_argument("--resume", action="store_true",
                   help="go on from the checkpoint an interrupted run left")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="where the family folder goes (default: the per-user family folder)")
    p.add_argument("--family-path", type=Path, action="append", default=[],
                   help="extra folder to search for the BASE family (repeatable)")
    p.add_argument("--patch", type=int, default=64, help="training crop side, px (default 64)")
    p.add_argument("--batch", type=int, default=8, help="crops per step (default 8)")
    p.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (default 2e-4)")
    # Interrupts are handled in finetune.py (they save a checkpoint); SIGTERM before the
    # training starts unwinds like any command that writes.
    p.set_defaults(handler=cmd_finetune, writes=True)


def _effect(args: argparse.Namespace) -> Any:
    """The one effect the command line names; DNIError when it names none or several."""
    from .degradations import Effect

    given = [flag for flag in EFFECT_FLAGS if getattr(args, flag[2:]) is not None]
    if len(given) != 1:
        said = f"; got {' and '.join(given)}" if given else ""
        raise DNIError(f"say what to learn with exactly one of --noise SIGMA, --jpeg QUALITY, "
                       f"--blur SIGMA or --pairs INPUT_DIR TARGET_DIR{said}")
    kind = given[0][2:]
    return Effect(kind, None if kind == "pairs" else getattr(args, kind))


def cmd_finetune(args: argparse.Namespace) -> int:
    from .cli import _progress_bar, _warn
    from .finetune import FineTune, Interrupted, Request

    request = Request(base=args.base, name=args.name, effect=_effect(args), images=args.images,
                      pairs=tuple(args.pairs) if args.pairs else None, out=args.out,
                      minutes=args.minutes, steps=args.steps, device=args.device,
                      resume=args.resume, patch=args.patch, batch=args.batch, lr=args.lr,
                      family_paths=tuple(args.family_path))
    job = FineTune(request, say=lambda line: print(f"dni: {line}", file=sys.stderr))
    try:
        with _progress_bar(100, f"fine-tuning {args.name}") as bar:
            outcome = job.run(lambda done: bar.update(int(done * 100) - bar.n))
    except Interrupted as stop:
        print(f"dni: interrupted: {stop}", file=sys.stderr)
        return 128 + stop.signum
    record = outcome.record
    corr = record["correlation"]
    slider = ", ".join(f"{v:.4f}" for v in record["l1_along_slider"]["l1"])
    print(f"wrote family {args.name!r} in {outcome.folder} ({record['steps']} steps, "
          f"{record['minutes']} min on {record['device']})")
    print(f"filter correlation (paper eq. 3): median {corr['median']:.3f}, "
          f"min {corr['minimum']:.3f} -> {corr['verdict']}")
    print(f"L1 error along the slider (strength 0 .. 1): {slider}")
    if corr["verdict"] != "correlated":
        _warn("the members are not well correlated: the slider may not blend smoothly "
              "(train with a lower --lr or for fewer steps)")
    where = f" --family-path {args.out}" if args.out else ""
    print(f"try: dni apply IMAGE -o OUT.png --family {args.name}{where} --strength 0.5")
    return 0
