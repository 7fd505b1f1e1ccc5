"""Writing a family folder: fp16 safetensors members, `family.toml`, `training.json`.

The folder is written in full somewhere no lookup sees it and renamed into place in one
step, so a family is either absent or complete: a crash, Ctrl+C or a full disk never
leaves a half-written family for `dni families` or the editors to trip over.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .catalogue import to_toml
from .checkpoints import StateDict, check_compatible, read_state_dict
from .errors import DNIError
from .manifest import MANIFEST_NAME, load_manifest

FP16_MAX = float(torch.finfo(torch.float16).max)


@dataclass(frozen=True)
class MemberSpec:
    label: str
    file: str  # a file name inside the family folder
    position: float
    state: StateDict = field(repr=False)


@dataclass(frozen=True)
class FamilySpec:
    name: str
    task: str
    title: str
    description: str
    architecture: str
    options: dict[str, Any]
    scale: int
    axis: dict[str, str]  # name, low, high
    members: tuple[MemberSpec, ...]
    tile_pad: int | None = None


def half_precision(state: StateDict) -> StateDict:
    """fp16 copies of the float tensors, as the bundled families ship; a tensor with values
    beyond fp16's range stays float32 (in fp16 it would become infinite)."""
    out = {}
    for key, tensor in state.items():
        tensor = tensor.detach().cpu()
        fits = tensor.is_floating_point() and (tensor.numel() == 0
                                               or float(tensor.abs().max()) <= FP16_MAX)
        out[key] = (tensor.to(torch.float16) if fits else tensor).contiguous()
    return out


def manifest_data(spec: FamilySpec) -> dict[str, Any]:
    """The family.toml fields for `spec` (docs/families.md describes them)."""
    data: dict[str, Any] = {
        "name": spec.name, "task": spec.task, "title": spec.title,
        "description": spec.description, "architecture": spec.architecture,
        "scale": spec.scale}
    if spec.tile_pad is not None:
        data["tile_pad"] = spec.tile_pad
    if spec.options:
        data["architecture_options"] = dict(spec.options)
    data["axis"] = dict(spec.axis)
    data["members"] = [{"label": m.label, "file": m.file, "position": float(m.position)}
                       for m in spec.members]
    return data


def stage_family(spec: FamilySpec, folder: Path, record: dict[str, Any]) -> None:
    """Write the whole family into `folder` (emptied first) and check that it loads: the
    manifest parses and the members read back and fit together."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    record_file = folder / "training.json"
    record_file.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    # safetensors makes its files 0600; a family's files get what any new file gets
    # (0666 less the umask), as the record just did.
    mode = record_file.stat().st_mode & 0o777
    for member in spec.members:
        save_file(half_precision(member.state), str(folder / member.file))
        os.chmod(folder / member.file, mode)
    # The manifest last: a folder without one is not a family.
    (folder / MANIFEST_NAME).write_text(to_toml(manifest_data(spec)), encoding="utf-8")
    manifest = load_manifest(folder)
    check_compatible([read_state_dict(m.file) for m in manifest.members],
                     [m.label for m in manifest.members])


def move_into_place(staged: Path, final: Path) -> None:
    """Rename the staged folder to its final name in one step; DNIError if something took
    that name meanwhile."""
    try:
        os.rename(staged, final)
    except OSError as exc:
        raise DNIError(f"{final}: cannot put the new family there ({exc.strerror or exc}); "
                       f"it is complete in {staged}") from None
