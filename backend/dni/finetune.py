"""`dni finetune`: the paper's recipe as a tool. A copy of a base network is fine-tuned
towards a new effect, and the base and the copy become a two-member family whose slider
goes from one to the other (Wang et al. 2019, Sec. 3.2: fine-tuning keeps the filters
correlated, and correlated members interpolate smoothly).

Training: random crops of the user's photos, the effect made on the fly (or example
pairs), Adam, L1 loss, a cosine learning rate over the budget (the budget is steps or
minutes, whichever ends first), on the GPU when there is one.

Where things go: `<out>/.<name>.dni-finetune/` holds the checkpoint (model + Adam state,
safetensors) while training and the family while it is written; the finished family is
renamed to `<out>/<name>` in one step, and the staging folder removed. Ctrl+C or SIGTERM
stops between steps and saves the checkpoint; `--resume` goes on from it.
"""

from __future__ import annotations

import platform
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError

from . import __version__
from .base_model import BaseModel, resolve_base
from .blend import interpolate
from .correlation import correlation_report
from .degradations import Effect
from .device import resolve_device
from .errors import DNIError
from .family_writer import FamilySpec, MemberSpec, move_into_place, stage_family
from .finetune_data import Batches, PairBatches, SyntheticBatches, clean_images, example_pairs
from .manifest import valid_family_name
from .registry import user_family_dir
from .training import StopFlag, load_checkpoint, lr_at, save_checkpoint, stop_on_signals

DEFAULT_MINUTES = 10.0
DEFAULT_PATCH = 64
DEFAULT_BATCH = 8
DEFAULT_LR = 2e-4
SAVE_EVERY_S = 120.0
LOSS_POINTS = 50  # the training record keeps about this many points of the loss curve
CHECK_STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
CHECK_CROPS = 16
CHECKPOINT = "checkpoint.safetensors"
BASE_FILE, NEW_FILE = "base.safetensors", "tuned.safetensors"
Say = Callable[[str], None]
Progress = Callable[[float], None]


@dataclass(frozen=True)
class Request:
    """What the user asked for, as the command line gives it."""

    base: str
    name: str
    effect: Effect
    images: Path | None = None
    pairs: tuple[Path, Path] | None = None
    out: Path | None = None
    minutes: float | None = None
    steps: int | None = None
    device: str = "auto"
    resume: bool = False
    patch: int = DEFAULT_PATCH
    batch: int = DEFAULT_BATCH
    lr: float = DEFAULT_LR
    seed: int = 0
    family_paths: tuple[Path, ...] = ()

    def budget_s(self) -> float:
        """Seconds of training: --minutes, unlimited when only --steps is given."""
        if self.minutes is None:
            return float("inf") if self.steps is not None else DEFAULT_MINUTES * 60
        return self.minutes * 60


class Interrupted(Exception):
    """Training stopped on a signal; its checkpoint is saved."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


@dataclass
class Outcome:
    folder: Path
    record: dict[str, Any]


@dataclass
class _Run:
    """Training progress, as a checkpoint keeps it."""

    step: int = 0
    elapsed: float = 0.0
    losses: list[dict[str, float]] = field(default_factory=list)
    resumed_at: list[int] = field(default_factory=list)


def check_request(req: Request) -> None:
    """Everything that can be said about the arguments before a file is read."""
    if not valid_family_name(req.name):
        raise DNIError(f"--name {req.name!r}: a family name is lower-case letters, digits, "
                       "'.', '_' or '-' (at most 64)")
    if (req.pairs is None) == (req.effect.kind == "pairs"):
        raise DNIError("internal: --pairs and the effect disagree")
    if req.pairs is not None and req.images is not None:
        raise DNIError("--pairs brings its own images: leave out --images")
    if req.pairs is None and req.images is None:
        raise DNIError("--images DIR: give a folder of clean photos to train on")
    for flag, value, low in (("--patch", req.patch, 16), ("--batch", req.batch, 1),
                             ("--steps", req.steps, 1)):
        if value is not None and value < low:
            raise DNIError(f"{flag} {value}: use at least {low}")
    if req.minutes is not None and not 0 < req.minutes <= 10_000:
        raise DNIError(f"--minutes {req.minutes}: give a number of minutes above 0")
    if not 0 < req.lr < 1:
        raise DNIError(f"--lr {req.lr}: a learning rate is between 0 and 1 (e.g. 2e-4)")


def _settings(req: Request, base: BaseModel, patch: int) -> dict[str, Any]:
    """What a resumed run must share with the run it continues."""
    return {"base_sha256": base.sha256, "effect": asdict(req.effect),
            "images": str(req.images.resolve()) if req.images else None,
            "pairs": [str(p.resolve()) for p in req.pairs] if req.pairs else None,
            "patch": patch, "batch": req.batch, "lr": req.lr, "seed": req.seed}


class FineTune:
    """One fine-tuning job: checked and loaded by the constructor, run by `run`."""

    def __init__(self, req: Request, say: Say) -> None:
        check_request(req)
        self.req, self.say = req, say
        out = req.out if req.out is not None else user_family_dir()
        self.final = out / req.name
        self.staging = out / f".{req.name}.dni-finetune"
        self.checkpoint = self.staging / CHECKPOINT
        self._check_folders()
        self.base = resolve_base(req.base, list(req.family_paths))
        # Inputs must be on the network's grid; targets are that times its scale.
        self.patch = -(-req.patch // self.base.multiple) * self.base.multiple
        self.batches = self._batches()
        self.device = resolve_device(req.device)
        self.settings = _settings(req, self.base, self.patch)

    def _check_folders(self) -> None:
        if self.final.exists():
            raise DNIError(f"{self.final} already exists: choose another --name, or remove "
                           "that family first")
        if self.checkpoint.exists() and not self.req.resume:
            raise DNIError(f"an interrupted fine-tune of {self.req.name!r} is saved in "
                           f"{self.staging}: add --resume to go on with it, or remove that "
                           "folder to start afresh")
        if self.req.resume and not self.checkpoint.exists():
            raise DNIError(f"--resume: no interrupted fine-tune of {self.req.name!r} in "
                           f"{self.staging.parent} (run without --resume to start)")

    def _batches(self) -> Batches:
        req, scale = self.req, self.base.scale
        if req.pairs is not None:
            return PairBatches(example_pairs(*req.pairs, scale, self.patch), self.patch,
                               scale, req.seed)
        assert req.images is not None
        side = (self.patch + req.effect.margin) * scale
        images = clean_images(req.images, side, lambda m: self.say(f"warning: {m}"))
        return SyntheticBatches(images, req.effect, self.patch, scale, req.seed)

    # -- training -----------------------------------------------------------------------
    def run(self, progress: Progress | None = None) -> Outcome:
        base_state = self.base.state()
        model = self.base.model.to(self.device).train()
        opt = torch.optim.Adam(model.parameters(), lr=self.req.lr)
        state = self._resume(model, opt) if self.req.resume else _Run()
        if state.step:
            # Fresh crops after a resume, not the ones the first steps already saw.
            self.batches.reseed(self.req.seed + 7919 * state.step)
        try:
            self.staging.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DNIError(f"{self.staging.parent}: cannot write the family there "
                           f"({exc.strerror or exc})") from None
        with stop_on_signals() as stop:
            self.say(f"fine-tuning {self.base.label} {self.req.effect.words().purpose} on "
                     f"{self.device.type}; Ctrl+C stops and keeps a checkpoint")
            self._train(model, opt, state, stop, progress)
            if stop:
                self._save(model, opt, state)
                raise Interrupted(stop.signal or signal.SIGINT, (
                    f"stopped at step {state.step}; the checkpoint is in {self.staging}: run "
                    "the same command with --resume to go on"))
            self._save(model, opt, state)
            return self._finish(model, base_state, state)

    def _resume(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> _Run:
        try:
            meta = load_checkpoint(self.checkpoint, model, {"adam": opt})
            saved, run = meta["settings"], _Run(**meta["run"])
        except (OSError, ValueError, KeyError, TypeError, RuntimeError,
                SafetensorError) as exc:  # a damaged or foreign checkpoint
            raise DNIError(f"--resume: cannot read the checkpoint {self.checkpoint} ({exc}); "
                           "remove that folder to start afresh") from None
        for key, value in self.settings.items():
            if saved.get(key) != value:
                raise DNIError(f"--resume: the checkpoint in {self.staging} was made with "
                               f"{key} = {saved.get(key)!r}, this command says {value!r}; "
                               "resume with the same settings, or remove that folder")
        run.resumed_at.append(run.step)
        return run

    def _save(self, model: torch.nn.Module, opt: torch.optim.Optimizer, run: _Run) -> None:
        try:
            save_checkpoint(self.checkpoint, model, {"adam": opt},
                            {"settings": self.settings, "run": asdict(run)})
        except OSError as exc:  # a full disk: the previous checkpoint is still whole
            raise DNIError(f"{self.checkpoint}: cannot save the checkpoint "
                           f"({exc.strerror or exc})") from None

    def _progress(self, run: _Run) -> float:
        by_steps = run.step / self.req.steps if self.req.steps else 0.0
        return min(1.0, max(by_steps, run.elapsed / self.req.budget_s()))

    def _train(self, model: torch.nn.Module, opt: torch.optim.Optimizer, run: _Run,
               stop: StopFlag, progress: Progress | None) -> None:
        last_save, total, count = time.monotonic(), 0.0, 0
        next_point = self._progress(run) + 1 / LOSS_POINTS
        while self._progress(run) < 1.0 and not stop:
            t0 = time.monotonic()
            for group in opt.param_groups:
                group["lr"] = lr_at(self._progress(run), self.req.lr)
            total += train_step(model, opt, self.batches(self.req.batch), self.device)
            count += 1
            run.step += 1
            run.elapsed += time.monotonic() - t0
            done = self._progress(run)
            if done >= next_point or done >= 1.0:
                run.losses.append({"step": run.step, "minutes": round(run.elapsed / 60, 3),
                                   "l1": total / count})
                total, count, next_point = 0.0, 0, done + 1 / LOSS_POINTS
            if progress is not None:
                progress(done)
            if time.monotonic() - last_save > SAVE_EVERY_S:
                self._save(model, opt, run)
                last_save = time.monotonic()

    # -- the family ---------------------------------------------------------------------
    def _finish(self, model: torch.nn.Module, base_state: dict[str, torch.Tensor],
                run: _Run) -> Outcome:
        new_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        report = correlation_report(base_state, new_state, ("base", "fine-tuned"))
        record = self._record(run, report, self._slider_check(model, base_state, new_state))
        staged = self.staging / self.req.name
        stage_family(self._family_spec(base_state, new_state), staged, record)
        move_into_place(staged, self.final)
        shutil.rmtree(self.staging, ignore_errors=True)
        return Outcome(self.final, record)

    def _slider_check(self, model: torch.nn.Module, base_state: dict[str, torch.Tensor],
                      new_state: dict[str, torch.Tensor]) -> list[float]:
        """L1 to the targets of fixed held-back crops along the slider: it should fall from
        the base's end to the new member's."""
        inputs, targets = self.batches.fixed(CHECK_CROPS, self.req.seed + 424242)
        losses = []
        model.eval()
        with torch.inference_mode():
            for s in CHECK_STRENGTHS:
                model.load_state_dict(interpolate([base_state, new_state], [1 - s, s]))
                out = model(inputs.to(self.device))
                losses.append(round(float(F.l1_loss(out.float().cpu(), targets)), 6))
        model.load_state_dict(new_state)
        return losses

    def _record(self, run: _Run, report: Any, slider: list[float]) -> dict[str, Any]:
        return {
            "made_by": f"dni finetune {__version__}",
            "base": {"given": self.base.spec, "label": self.base.label,
                     "file": str(self.base.file), "sha256": self.base.sha256},
            "effect": asdict(self.req.effect),
            "steps": run.step, "minutes": round(run.elapsed / 60, 2),
            "resumed_at_steps": run.resumed_at,
            "device": str(self.device), "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "settings": {**self.settings, "loss": "L1", "optimiser": "Adam",
                         "schedule": "cosine to 2% over the budget",
                         "budget_minutes": self.req.minutes, "budget_steps": self.req.steps},
            "losses": run.losses,
            "l1_along_slider": {"strengths": list(CHECK_STRENGTHS), "l1": slider},
            "correlation": {"median": report.median, "minimum": report.minimum,
                            "verdict": report.verdict},
        }

    def _family_spec(self, base_state: dict[str, torch.Tensor],
                     new_state: dict[str, torch.Tensor]) -> FamilySpec:
        words = self.req.effect.words()
        base = self.base
        return FamilySpec(
            name=self.req.name, task=self._task(), title=self.req.name.replace("-", " ").title(),
            description=f"{base.label}, fine-tuned {words.purpose} (dni finetune)",
            architecture=base.architecture, options=base.options, scale=base.scale,
            axis={"name": words.axis, "low": f"as {base.label}", "high": words.high},
            members=(MemberSpec(base.label, BASE_FILE, 0, base_state),
                     MemberSpec(words.label, NEW_FILE, 1, new_state)),
            tile_pad=base.tile_pad)

    def _task(self) -> str:
        """The editors' menu the family goes in."""
        if self.base.scale > 1:
            return "super-resolve"
        if self.req.effect.kind in ("noise", "jpeg"):
            return "denoise"
        return self.base.task or "other"


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer,
               batch: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> float:
    """One Adam step on the L1 loss; returns the loss."""
    inputs, targets = (t.to(device, non_blocking=True) for t in batch)
    loss = F.l1_loss(model(inputs).float(), targets)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.item())
