"""Installing a catalogue family into the per-user family folder, and removing it.

The files gather in a staging folder `.<name>.dni-staging` beside the families (its
`.part` files are resumed by the next attempt). The manifest is checked before any byte
is fetched, written only once every member's SHA-256 matched, and the folder is renamed
into place in one step: a family either appears complete and verified, or not at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .catalogue import Download, Entry
from .download import Fetcher, Progress, check_disk_space, sha256_of, verify
from .errors import DNIError
from .manifest import MANIFEST_NAME, Manifest, load_manifest
from .registry import user_family_dir

STAGING_SUFFIX = ".dni-staging"


class InstallError(DNIError):
    """A family cannot be installed or removed as asked."""


def staging_dir(root: Path, name: str) -> Path:
    return root / f".{name}{STAGING_SUFFIX}"


def installed(root: Path, name: str) -> bool:
    return (root / name / MANIFEST_NAME).is_file()


def install(entry: Entry, *, root: Path | None = None, sources: Sequence[Path] = (),
            fetcher: Fetcher | None = None, progress: Progress | None = None,
            cancelled: Callable[[], bool] | None = None) -> Manifest:
    """Download (or, with `sources`, copy from the user's files) every member, verify
    it, and move the family into `root` (the per-user folder by default)."""
    root = root or user_family_dir()
    if installed(root, entry.name):
        raise InstallError(f"{entry.name} is already installed in {root / entry.name} "
                           f"(`dni remove {entry.name}` first to install it again)")
    _check_manifest(entry)
    root.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(root, entry.name)
    staging.mkdir(exist_ok=True)
    for item in entry.downloads:
        final = staging / item.file
        if final.exists():
            continue  # verified by an earlier attempt
        part = staging / f"{item.file}.part"
        if sources:
            _copy_from(sources, item, part, progress)
        else:
            have = part.stat().st_size if part.exists() else 0
            check_disk_space(root, sum(d.size for d in entry.downloads) - have)
            (fetcher or Fetcher.from_env()).fetch(item, part, progress, cancelled)
        part.replace(final)
    (staging / MANIFEST_NAME).write_text(entry.manifest_text(), encoding="utf-8")
    target = root / entry.name
    os.replace(staging, target)
    return load_manifest(target)


def _check_manifest(entry: Entry) -> None:
    """The catalogue's manifest must load like any family.toml: checked in a scratch
    folder before anything is created (the staging folder must not look like a family
    before it is complete)."""
    with tempfile.TemporaryDirectory(prefix="dni-manifest-") as scratch:
        (Path(scratch) / MANIFEST_NAME).write_text(entry.manifest_text(), encoding="utf-8")
        load_manifest(Path(scratch))


def _candidates(sources: Sequence[Path], item: Download) -> list[Path]:
    """The user's files that may be this member: named files, and in named folders the
    file of the member's name or, failing that, any file of the member's size."""
    found: list[Path] = []
    for source in sources:
        if source.is_dir():
            named = source / item.file
            found += [named] if named.is_file() else [
                p for p in sorted(source.iterdir())
                if p.is_file() and p.stat().st_size == item.size]
        elif source.is_file() and source.stat().st_size == item.size:
            found.append(source)
        elif not source.exists():
            raise InstallError(f"{source}: no such file or folder")
    return found


def _copy_from(sources: Sequence[Path], item: Download, part: Path,
               progress: Progress | None) -> None:
    """Copy the user's file that has the member's SHA-256 into `part`."""
    for candidate in _candidates(sources, item):
        if sha256_of(candidate) == item.sha256:
            shutil.copyfile(candidate, part)
            if progress is not None:
                progress(item.size)
            verify(part, item)
            return
    raise InstallError(f"{item.file}: none of the given files is it (looked for "
                       f"{item.size} bytes with sha256 {item.sha256})")


def remove(name: str, root: Path | None = None) -> Path:
    """Delete an installed family (and any unfinished download of it); its folder."""
    root = root or user_family_dir()
    target = root / name
    staging = staging_dir(root, name)
    if not target.is_dir() and not staging.is_dir():
        raise InstallError(f"{name} is not installed in {root} (bundled families and "
                           "folders on DNI_FAMILY_PATH are not removed by dni)")
    if target.is_dir():
        # Renamed away first: the family disappears at once, even if deleting is slow.
        doomed = root / f".{name}.dni-removing"
        shutil.rmtree(doomed, ignore_errors=True)
        os.replace(target, doomed)
        shutil.rmtree(doomed)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def correlation_verdicts(manifest: Manifest) -> list[tuple[str, float, str]]:
    """The paper's eq. 3 verdict of each member against the first, from the files."""
    from .checkpoints import read_state_dict
    from .correlation import correlation_report

    states = [read_state_dict(m.file) for m in manifest.members]
    first = manifest.members[0].label
    verdicts = []
    for member, state in zip(manifest.members[1:], states[1:], strict=True):
        report = correlation_report(states[0], state, (first, member.label))
        verdicts.append((member.label, report.median, report.verdict))
    return verdicts
