"""Choosing the device and the memory budget that sizes tiles."""

from __future__ import annotations

import torch

from .errors import DNIError

CPU_BUDGET_CAP = 2 * 2**30  # bytes of activations per tile on a CPU: keeps tiles responsive


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DNIError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DNIError("device 'cuda' was asked for but no CUDA GPU is available")
    return device


def memory_budget(device: torch.device) -> int:
    """Bytes a tile's activations may take."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            fields = dict(line.split(":", 1) for line in info)
        available = int(fields["MemAvailable"].strip().split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        available = 8 * 2**30
    return min(CPU_BUDGET_CAP, available // 4)


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text
                                              or "can't allocate memory" in text)


def bf16_fast_on_cpu() -> bool:
    """True where oneDNN runs bfloat16 convolutions natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The reduced precision to run under, or None for float32.

    auto: fp16 on CUDA, float32 elsewhere. fast: the quickest reduced precision the
    device has (fp16 on CUDA, bf16 on CPUs with native bf16, else float32); the server
    uses it for previews.
    """
    if precision not in ("auto", "fast", "fp32", "fp16", "bf16"):
        raise DNIError(f"unknown precision {precision!r}; use auto, fast, fp32, fp16 or bf16")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cpu" and (precision == "bf16"
                                 or precision == "fast" and bf16_fast_on_cpu()):
        return torch.bfloat16
    if precision == "fp16" and device.type == "cpu":
        raise DNIError("fp16 is for GPUs; on a CPU use bf16 or fp32")
    return None
