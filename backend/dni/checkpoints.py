"""Reading member weights safely and turning them into a model.

Never unpickles code: `.safetensors` is read directly, and `.pth/.pt/.ckpt` only with
`torch.load(weights_only=True)`, which refuses anything but tensors and plain containers.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import archs
from .errors import FamilyError, IncompatibleModels

StateDict = dict[str, torch.Tensor]

# Checkpoint wrappers used by common trainers, in the order we prefer them.
# Real-ESRGAN/BasicSR store both `params_ema` and `params`: we take the same key for
# every member so that what is interpolated is what is run.
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net", "generator")
# torch.save stores tensors uncompressed in its zip, and deflate shrinks real weights by a
# few per cent at most; a checkpoint whose members expand far beyond its size on disk is a
# zip bomb (262 KB of zeros deflated became 1.15 GB in memory). Safetensors files cannot
# expand: their header's offsets must match the file's size.
MAX_EXPANSION = 4
EXPANSION_SLACK = 1 << 20  # bytes: small archives carry fixed-size records


def read_state_dict(path: Path) -> StateDict:
    """The file's tensors, unwrapped from trainer checkpoints; FamilyError naming the file
    when it is missing, unreadable, a zip bomb or holds NaN or infinite values."""
    if not path.is_file():
        raise FamilyError(f"{path}: weight file not found")
    if path.suffix != ".safetensors":
        _check_expansion(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: Any = load_file(str(path), device="cpu")
        else:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a bad file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FamilyError(f"{path}: cannot read weights ({first_line})") from None
    state = _unwrap(raw, path)
    _check_finite(state, path)
    return state


def _check_expansion(path: Path) -> None:
    """FamilyError if a zip checkpoint would expand to over MAX_EXPANSION times its size."""
    size = path.stat().st_size
    try:
        if not zipfile.is_zipfile(path):
            return  # the legacy format: raw storages, read as they are
        with zipfile.ZipFile(path) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FamilyError(f"{path}: cannot read weights ({exc})") from None
    if expanded > MAX_EXPANSION * size + EXPANSION_SLACK:
        raise FamilyError(f"{path}: this checkpoint would expand from {size} bytes on disk to "
                          f"{expanded} bytes in memory; a compressed checkpoint may expand "
                          f"to at most {MAX_EXPANSION} times its size (save it uncompressed, "
                          "as torch.save does)")


def _check_finite(state: StateDict, path: Path) -> None:
    """NaN or infinite weights make every output NaN: black, with nothing said."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise FamilyError(f"{path}: tensor {key!r} holds NaN or infinite values; "
                              "these weights are broken")


def _unwrap(raw: Any, path: Path) -> StateDict:
    for _ in range(3):
        if isinstance(raw, dict) and raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
            break
        if isinstance(raw, dict):
            key = next((k for k in _WRAPPER_KEYS if isinstance(raw.get(k), dict)), None)
            if key is not None:
                raw = raw[key]
                continue
        raise FamilyError(f"{path}: not a state dict of tensors")
    else:
        raise FamilyError(f"{path}: not a state dict of tensors")
    # DataParallel checkpoints prefix every key with 'module.'.
    if all(k.startswith("module.") for k in raw):
        raw = {k[len("module."):]: v for k, v in raw.items()}
    return dict(raw)


def check_compatible(state_dicts: list[StateDict], labels: list[str]) -> None:
    """Raise IncompatibleModels naming the first tensor that differs."""
    first, first_label = state_dicts[0], labels[0]
    for sd, label in zip(state_dicts[1:], labels[1:], strict=True):
        missing = [k for k in first if k not in sd]
        if missing:
            raise IncompatibleModels(f"{label} has no tensor {missing[0]!r} "
                                     f"(present in {first_label})")
        extra = [k for k in sd if k not in first]
        if extra:
            raise IncompatibleModels(f"{label} has an extra tensor {extra[0]!r} "
                                     f"(absent from {first_label})")
        for key, tensor in first.items():
            other = sd[key]
            if tuple(other.shape) != tuple(tensor.shape):
                raise IncompatibleModels(
                    f"tensor {key!r} has shape {tuple(tensor.shape)} in {first_label} "
                    f"but {tuple(other.shape)} in {label}")
            if other.is_floating_point() != tensor.is_floating_point():
                raise IncompatibleModels(f"tensor {key!r} is floating point in only one of "
                                         f"{first_label} and {label}")


def build_model(architecture: str, options: dict[str, Any], state_dict: StateDict) -> nn.Module:
    """An eval-mode model with the given weights loaded (strictly)."""
    return build_model_with_multiple(architecture, options, state_dict)[0]


def build_model_with_multiple(architecture: str, options: dict[str, Any], state_dict: StateDict,
                              source: str | None = None) -> tuple[nn.Module, int | None]:
    """Like `build_model`, plus the input size multiple the model needs, when known.
    `source` names the weights in errors (a member's file)."""
    multiple: int | None = None
    if architecture == "auto":
        model, multiple = _spandrel_model(state_dict)
    else:
        # Checked on a skeleton that holds no memory first: weights that do not fit the
        # options (or options far larger than the weights) fail before anything is built.
        with torch.device("meta"):
            skeleton = archs.build(architecture, options)
        check_fits(skeleton.state_dict(), state_dict, f"{source + ': ' if source else ''}the "
                   f"weights do not fit architecture {architecture!r} with these options")
        model = archs.build(architecture, options)
        model.load_state_dict(state_dict)
        # Strided nets declare their coarsest grid, so that tiles start on it and see
        # the same sampling phase as the whole image would.
        multiple = getattr(model, "size_multiple", None)
    return model.eval(), multiple


def check_fits(expected: StateDict, given: StateDict, what: str) -> None:
    """FamilyError `what: ...` naming the first tensor that is missing, extra or of
    another shape in `given` than in `expected`."""
    missing = [k for k in expected if k not in given]
    if missing:
        raise FamilyError(f"{what}: the file lacks tensor {missing[0]!r}")
    extra = [k for k in given if k not in expected]
    if extra:
        raise FamilyError(f"{what}: the file has an unexpected tensor {extra[0]!r}")
    for key, tensor in expected.items():
        if tuple(given[key].shape) != tuple(tensor.shape):
            raise FamilyError(f"{what}: tensor {key!r} is {tuple(given[key].shape)} in the "
                              f"file, the architecture needs {tuple(tensor.shape)}")


def _spandrel_model(state_dict: StateDict) -> tuple[nn.Module, int]:
    try:
        from spandrel import ModelLoader
    except ImportError as exc:  # pragma: no cover - spandrel is a hard dependency
        raise FamilyError(f"architecture 'auto' needs spandrel ({exc})") from None
    try:
        descriptor = ModelLoader().load_from_state_dict(state_dict)
    except Exception as exc:  # noqa: BLE001 - spandrel raises several types
        raise FamilyError(f"spandrel could not recognise the architecture ({exc})") from None
    return descriptor.model, int(descriptor.size_requirements.multiple_of)
