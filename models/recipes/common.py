"""Shared training machinery: random crops, resumable checkpoints, time-budgeted loops.

Checkpoints are safetensors only (model + Adam moments + JSON metadata): nothing is ever
unpickled. The learning-rate schedule follows *progress* = max(step / steps,
elapsed / budget), so a run squeezed by a busy CPU still anneals and ends on time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

# Crops, checkpoints and the schedule live in the installed package, which `dni finetune`
# uses too; they are imported here under their old names.
from dni.training import CropSampler, load_checkpoint, lr_at, save_checkpoint  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"


@dataclass
class RunConfig:
    family: str
    member: str
    steps: int
    minutes: float
    lr: float
    batch: int
    patch: int
    init_from: str | None = None  # path of the member this one is fine-tuned from
    warmup: int = 0
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def export_member(model: nn.Module, path: Path, keys: Callable[[str], bool] | None = None) -> None:
    """fp16 safetensors of the model's state dict: what the family ships."""
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()
          if keys is None or keys(k)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))


def load_member_into(model: nn.Module, path: Path,
                     strict: bool = True) -> tuple[list[str], list[str]]:
    """Load an exported (fp16) member in fp32; returns the missing and unexpected keys,
    which only a non-strict load can leave."""
    sd = load_file(str(path))
    return model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=strict)


class Trainer:
    """Runs `step_fn(step, lr_scale) -> dict of floats` until the step or time budget ends.

    Resumes from `<run_dir>/ckpt.safetensors`; writes `log.txt` and a checkpoint every
    `save_every` seconds; calls `on_save` (e.g. exporting the member) at each save.
    """

    def __init__(self, cfg: RunConfig, model: nn.Module, opts: dict[str, torch.optim.Optimizer],
                 run_dir: Path, save_every: float = 120.0) -> None:
        self.cfg, self.model, self.opts = cfg, model, opts
        self.run_dir = run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt = run_dir / "ckpt.safetensors"
        self.save_every = save_every
        self.step = 0
        self.elapsed = 0.0
        self.base_lrs = {n: [g["lr"] for g in o.param_groups] for n, o in opts.items()}
        if self.ckpt.exists():
            meta = load_checkpoint(self.ckpt, model, opts)
            self.step, self.elapsed = int(meta["step"]), float(meta["elapsed"])
            self.log(f"resumed at step {self.step}, {self.elapsed:.0f}s elapsed")

    def log(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {text}"
        with open(self.run_dir / "log.txt", "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def progress(self) -> float:
        by_time = self.elapsed / max(1e-6, self.cfg.minutes * 60)
        return max(self.step / max(1, self.cfg.steps), by_time)

    def save(self, on_save: Callable[[], None] | None) -> None:
        save_checkpoint(self.ckpt, self.model, self.opts,
                        {"step": self.step, "elapsed": self.elapsed, "config": asdict(self.cfg)})
        if on_save:
            on_save()

    def run(self, step_fn: Callable[[int, float], dict[str, float]],
            on_save: Callable[[], None] | None = None, log_every: int = 50) -> dict[str, Any]:
        warm = self.cfg.warmup / max(1, self.cfg.steps)
        last_save = time.monotonic()
        sums: dict[str, float] = {}
        count = 0
        while self.progress() < 1.0:
            t0 = time.monotonic()
            scale = lr_at(self.progress(), 1.0, warm)
            for name, opt in self.opts.items():
                for g, base in zip(opt.param_groups, self.base_lrs[name], strict=True):
                    g["lr"] = base * scale
            losses = step_fn(self.step, scale)
            self.step += 1
            self.elapsed += time.monotonic() - t0
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            if self.step % log_every == 0:
                avg = " ".join(f"{k}={v / count:.5f}" for k, v in sums.items())
                self.log(f"step {self.step} lr×{scale:.3f} {self.elapsed:.0f}s "
                         f"{self.step / max(self.elapsed, 1e-6):.2f} it/s {avg}")
                sums, count = {}, 0
            if time.monotonic() - last_save > self.save_every:
                self.save(on_save)
                last_save = time.monotonic()
        self.save(on_save)
        self.log(f"done: {self.step} steps in {self.elapsed:.0f}s")
        return {"steps": self.step, "seconds": round(self.elapsed, 1)}


def write_training_record(path: Path, cfg: RunConfig, result: dict[str, Any],
                          notes: dict[str, Any] | None = None, continues: bool = False) -> None:
    """Append/replace this member's entry in the family's training.json.

    A run that `continues` the member keeps the earlier runs under "earlier", and its steps
    and seconds are the totals, so the record still says what the shipped weights cost.
    """
    record: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"members": {}}
    old = record["members"].get(cfg.member)
    if continues and old:
        before = old.pop("earlier", [])
        # The old entry's steps and seconds are totals over `before` too: keep its own.
        own = {**old, "steps": old["steps"] - sum(r["steps"] for r in before),
               "seconds": round(old["seconds"] - sum(r["seconds"] for r in before), 1)}
        earlier = [*before, own]
        result = {**result, "steps": result["steps"] + sum(r["steps"] for r in earlier),
                  "seconds": round(result["seconds"] + sum(r["seconds"] for r in earlier), 1),
                  "earlier": earlier}
    record["members"][cfg.member] = {
        **asdict(cfg), **result, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(notes or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def setup_threads(threads: int = 1) -> None:
    torch.set_num_threads(threads)
    try:
        os.nice(0)
    except OSError:
        pass


def recipe_parser(doc: str | None, choices: list[str]) -> argparse.ArgumentParser:
    """The options every recipe takes; `choices` are the values --member accepts."""
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--member", default="all", choices=choices)
    p.add_argument("--minutes", type=float, help="time budget per member")
    p.add_argument("--steps", type=int, help="step budget per member")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--smoke", action="store_true",
                   help="a few steps of a tiny net on synthetic images")
    p.add_argument("--out", type=Path, default=ROOT, help="where the families are written")
    p.add_argument("--runs", type=Path, help="where checkpoints go (default: models/runs)")
    return p


def add_precision_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="bf16 autocast (weights and Adam stay fp32); auto = bf16 where the "
                        "CPU has bf16 units (AMX/AVX512-BF16), else fp32")


def resolve_precision(choice: str) -> str:
    if choice == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    if choice == "bf16" and not cpu_has_bf16():
        raise SystemExit("--precision bf16: this CPU has no bf16 units (AMX/AVX512-BF16); "
                         "use --precision fp32")
    return choice


def cpu_has_bf16() -> bool:
    """oneDNN's own test; on such a CPU the denoise recipe steps about 3x faster in bf16."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast(precision: str) -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def mse_step(model: nn.Module, opt: torch.optim.Optimizer, inputs: torch.Tensor,
             targets: torch.Tensor, precision: str) -> float:
    """One optimiser step on the MSE of `model(inputs)` against `targets`; the loss."""
    with autocast(precision):
        outputs = model(inputs)
    loss = torch.nn.functional.mse_loss(outputs.float(), targets)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def add_crop_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patch", type=int, default=64, help="training crop side (px)")
    p.add_argument("--batch", type=int, default=16, help="crops per step")


def check_crop_options(p: argparse.ArgumentParser, args: argparse.Namespace,
                       grid: int) -> None:
    """--patch must be a multiple of the net's grid (two at least); --batch at least 1."""
    if args.patch < 2 * grid or args.patch % grid:
        p.error(f"--patch {args.patch}: use a multiple of {grid}, at least {2 * grid} "
                "(the net's grid)")
    if args.batch < 1:
        p.error(f"--batch {args.batch}: use at least 1")


def add_continue_options(p: argparse.ArgumentParser) -> None:
    """--continue-from/--lr: train one shipped member longer (see recipes/README.md)."""
    p.add_argument("--continue-from", type=Path, metavar="FILE",
                   help="start the member from these weights (e.g. the shipped file, to train "
                        "it longer) with a fresh optimiser; its training record is extended")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the member's)")


# --member values that name several members at once.
MEMBER_GROUPS = {"all", "refs"}


def parse_recipe_args(p: argparse.ArgumentParser, argv: list[str] | None,
                      ) -> tuple[argparse.Namespace, Path]:
    """Parse, set the thread count, and return the arguments and the checkpoint folder."""
    args = p.parse_args(argv)
    if getattr(args, "continue_from", None) and args.member in MEMBER_GROUPS:
        p.error("--continue-from needs one --member")
    setup_threads(args.threads)
    return args, args.runs or (args.out / "runs" if args.smoke else RUNS)
