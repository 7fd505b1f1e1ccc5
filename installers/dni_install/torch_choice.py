"""Which torch build fits this machine, and from where pip gets it: an NVIDIA GPU (nvidia-smi
lists one) -> CUDA, an AMD GPU (rocminfo names a gfx agent, or /opt/rocm) -> ROCm, an
Apple Silicon Mac -> MPS (PyPI's macOS torch), anything else -> the CPU build. Each choice
says why it was made."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .platform import Platform

PYPI = None  # torch from the same index as everything else
TORCH_INDEX = "https://download.pytorch.org/whl"
# PyTorch's indexes move with its releases: --torch-index-url overrides these.
CUDA_INDEX = f"{TORCH_INDEX}/cu130"
ROCM_INDEX = f"{TORCH_INDEX}/rocm7.1"
CPU_INDEX = f"{TORCH_INDEX}/cpu"
# "index": whatever build the package index itself offers (PyPI's Linux torch is the
# CUDA one, which also runs on a CPU): for machines that reach PyPI but not PyTorch's own
# index, as this project's CI machines (installers/setup.sh uses it).
VARIANTS = ("cpu", "cuda", "rocm", "mps", "index", "skip")
PACKAGES = ("torch", "torchvision")  # spandrel imports torchvision: one build for both


class TorchError(Exception):
    """No torch build fits what was asked for on this machine."""


@dataclass(frozen=True)
class TorchChoice:
    variant: str  # one of VARIANTS
    index_url: str | None  # None: the default index (PyPI, or what --index-url says)
    reason: str

    def describe(self) -> str:
        where = self.index_url or "the package index"
        if self.variant == "skip":
            return f"torch: left as it is ({self.reason})"
        return f"torch: {self.variant} build from {where} ({self.reason})"


def nvidia_gpus(p: Platform) -> list[str]:
    exe = p.which("nvidia-smi")
    if not exe and p.windows:
        exe = p.which(str(p.env_path("SystemRoot", Path("C:/Windows")) / "System32"
                             / "nvidia-smi.exe"))
    out = p.run([exe, "-L"]) if exe else None
    return re.findall(r"^GPU \d+: ([^(\n]+)", out or "", re.M)


def amd_gpus(p: Platform) -> list[str]:
    exe = p.which("rocminfo")
    out = p.run([exe]) if exe else None
    return sorted(set(re.findall(r"^\s*Name:\s*(gfx[0-9a-f]+)", out or "", re.M)))


def _cuda(p: Platform, reason: str) -> TorchChoice:
    # PyPI's Linux x86_64 torch is the CUDA build; Windows' and ARM Linux's are CPU-only.
    if p.linux and not p.arm:
        return TorchChoice("cuda", PYPI, reason)
    return TorchChoice("cuda", CUDA_INDEX, reason)


def _checked(choice: TorchChoice, p: Platform) -> TorchChoice:
    if p.macos and not p.arm and choice.variant != "skip":
        raise TorchError("PyTorch publishes no builds for Intel Macs newer than 2.2 and DNI "
                         "needs 2.4: install torch yourself into the backend's environment, "
                         "then run again with --torch skip.")
    if choice.variant == "rocm" and not p.linux:
        raise TorchError("PyTorch's ROCm builds are for Linux only; use --torch cpu.")
    if choice.variant == "mps" and not (p.macos and p.arm):
        raise TorchError("MPS is the GPU of Apple Silicon Macs; this is not one.")
    if choice.variant == "cuda" and p.macos:
        raise TorchError("Macs have no CUDA; use --torch mps (Apple Silicon).")
    return choice


def choose(p: Platform, asked: str | None = None) -> TorchChoice:
    """The build for `asked` (one of VARIANTS), or the one this machine's GPU needs."""
    if asked:
        if asked not in VARIANTS:
            raise TorchError(f"--torch {asked!r}: pick one of {', '.join(VARIANTS)}.")
        reasons = {"cuda": lambda: _cuda(p, "asked for"),
                   "rocm": lambda: TorchChoice("rocm", ROCM_INDEX, "asked for"),
                   "mps": lambda: TorchChoice("mps", PYPI, "asked for"),
                   "cpu": lambda: TorchChoice("cpu", PYPI if p.macos else CPU_INDEX,
                                              "asked for"),
                   "index": lambda: TorchChoice("index", PYPI, "asked for: the package "
                                                "index's own build"),
                   "skip": lambda: TorchChoice("skip", PYPI, "asked for")}
        return _checked(reasons[asked](), p)
    if p.macos:
        return _checked(TorchChoice("mps", PYPI, "Apple Silicon Mac: torch uses its GPU "
                                    "through MPS"), p)
    gpus = nvidia_gpus(p)
    if gpus:
        return _checked(_cuda(p, f"nvidia-smi lists {', '.join(g.strip() for g in gpus)}"), p)
    if p.linux:
        amd = amd_gpus(p)
        if amd:
            return TorchChoice("rocm", ROCM_INDEX, f"rocminfo lists {', '.join(amd)}")
        if p.system_path("/opt/rocm").is_dir():
            return TorchChoice("rocm", ROCM_INDEX, "ROCm is installed in /opt/rocm")
    return TorchChoice("cpu", CPU_INDEX, "no NVIDIA or AMD GPU found (nvidia-smi, rocminfo)")
