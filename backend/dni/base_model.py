"""The network `dni finetune` starts from: a member of an installed family (FAMILY:MEMBER),
a member file inside a family folder, or a checkpoint spandrel recognises (.pth read with
`weights_only=True`, or .safetensors).

A family's manifest says how to build its members (architecture, options, scale); a loose
file has no manifest, so spandrel detects its architecture, and its scale is measured.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoints import StateDict, build_model_with_multiple, read_state_dict
from .errors import DNIError, FamilyError
from .manifest import MANIFEST_NAME, Manifest, Member, load_manifest, valid_family_name
from .registry import discover, find_family, search_paths

# Input side for measuring a loose checkpoint's scale: a multiple of every grid a
# network here needs (1, 2, 4, 8, 16).
_PROBE_SIDE = 48


@dataclass
class BaseModel:
    """The base network, built on the CPU in float32, and where it came from."""

    spec: str  # as the user gave it
    label: str  # how the family names this member
    file: Path
    architecture: str
    options: dict[str, Any]
    scale: int
    multiple: int  # input sides must be multiples of this
    tile_pad: int | None
    task: str | None  # the base family's task, when it has one
    model: nn.Module = field(repr=False)
    sha256: str = ""

    def state(self) -> StateDict:
        """A detached float32 copy of the base weights, as the model holds them."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_base(spec: str, family_paths: list[Path]) -> BaseModel:
    """The base named by `spec`; DNIError in one line if it names nothing usable."""
    path = Path(spec).expanduser()
    if path.is_file():
        manifest, member = _manifest_listing(path)
        if manifest is not None and member is not None:
            return _from_member(spec, manifest, member)
        return _from_loose_file(spec, path)
    if path.is_dir():
        raise DNIError(f"base {spec!r} is a folder; give a weight file, or FAMILY:MEMBER")
    family, _, member_name = spec.partition(":")
    paths = search_paths(family_paths)
    if not valid_family_name(family) or family not in discover(paths):
        known = ", ".join(sorted(discover(paths))) or "none installed"
        raise DNIError(f"base {spec!r}: no such file, and no installed family {family!r} "
                       f"(families: {known})")
    manifest = find_family(family, paths)
    choices = ", ".join(f"{family}:{m.file.stem}" for m in manifest.members)
    if not member_name:
        raise DNIError(f"base {spec!r}: say which member to start from: {choices}")
    for member in manifest.members:
        if member_name in (member.label, member.file.stem, member.file.name):
            return _from_member(spec, manifest, member)
    raise DNIError(f"base {spec!r}: family {family!r} has no member {member_name!r} "
                   f"(members: {choices})")


def _manifest_listing(path: Path) -> tuple[Manifest | None, Member | None]:
    """The family whose folder holds `path` and lists it as a member, if any."""
    if not (path.parent / MANIFEST_NAME).is_file():
        return None, None
    try:
        manifest = load_manifest(path.parent)
    except FamilyError:
        return None, None  # a broken manifest beside it: read the file on its own
    resolved = path.resolve()
    return manifest, next((m for m in manifest.members if m.file == resolved), None)


def _from_member(spec: str, manifest: Manifest, member: Member) -> BaseModel:
    state = read_state_dict(member.file)
    model, multiple = build_model_with_multiple(manifest.architecture,
                                                manifest.architecture_options, state,
                                                str(member.file))
    return BaseModel(spec=spec, label=f"{manifest.name}: {member.label}", file=member.file,
                     architecture=manifest.architecture,
                     options=dict(manifest.architecture_options), scale=manifest.scale,
                     multiple=multiple or 16, tile_pad=manifest.tile_pad, task=manifest.task,
                     model=model.float(), sha256=file_sha256(member.file))


def _from_loose_file(spec: str, path: Path) -> BaseModel:
    state = read_state_dict(path)
    try:
        model, multiple = build_model_with_multiple("auto", {}, state, str(path))
    except FamilyError as exc:
        raise DNIError(f"base {spec!r}: {exc}; a network of this project's own architectures "
                       "is named by its family instead (FAMILY:MEMBER, or the file inside "
                       "its family folder)") from None
    model = model.float()
    grid = multiple or 16
    return BaseModel(spec=spec, label=path.stem, file=path, architecture="auto", options={},
                     scale=_measured_scale(model, grid, spec), multiple=grid, tile_pad=None,
                     task=None, model=model, sha256=file_sha256(path))


def _measured_scale(model: nn.Module, multiple: int, spec: str) -> int:
    """Output side / input side on a blank RGB image: spandrel's nets all scale both sides
    by one whole factor."""
    side = multiple * -(-_PROBE_SIDE // multiple)
    try:
        with torch.inference_mode():
            out = model(torch.zeros(1, 3, side, side))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DNIError(f"base {spec!r}: this network does not take an RGB image ({first})"
                       ) from None
    height, width = out.shape[-2:]
    if out.dim() != 4 or out.shape[1] != 3 or height != width or height % side:
        raise DNIError(f"base {spec!r}: this network does not turn an RGB image into an "
                       f"RGB image a whole number of times larger (gave {tuple(out.shape)})")
    return height // side
