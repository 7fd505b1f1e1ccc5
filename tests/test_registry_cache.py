"""The registry's manifest cache: an unchanged family reads no TOML, an edited or added
one is seen at the next lookup (no restart)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, correlated_states, write_family

import dni
from dni import registry
from dni.errors import FamilyError

LONG_AGO = time.time() - 3600


def settle(*paths: Path) -> None:
    """Date files and folders back, as if last changed long ago: the cache trusts their
    stamps only then (a fresh stamp may hide a second change within one clock tick)."""
    for path in paths:
        os.utime(path, (LONG_AGO, LONG_AGO))


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every manifest the registry parses, in order."""
    seen: list[Path] = []
    real = registry.load_manifest

    def counting(folder: Path) -> dni.Manifest:
        seen.append(folder)
        return real(folder)

    monkeypatch.setattr(registry, "load_manifest", counting)
    return seen


@pytest.fixture
def root(tmp_path: Path, tiny_family_dir: Path) -> Path:
    """A family folder of its own (the cache is keyed by path) with 'tiny' in it, settled."""
    root = tmp_path / "families"
    root.mkdir()
    shutil.copytree(tiny_family_dir / "tiny", root / "tiny")
    settle(root / "tiny" / "family.toml", root / "tiny", root)
    return root


def families(engine: dni.Engine) -> dict[str, dict]:
    """The engine's families by name (the bundled ones are on its path too)."""
    return {f["name"]: f for f in engine.families()}


def edit_title(root: Path, name: str, title: str) -> None:
    manifest = root / name / "family.toml"
    text = manifest.read_text()
    start = text.index("title = ")
    end = text.index("\n", start)
    manifest.write_text(text[:start] + f'title = "{title}"' + text[end:])


def test_unchanged_family_is_parsed_once(root: Path, loads: list[Path]) -> None:
    first = registry.find_family("tiny", [root])
    assert registry.find_family("tiny", [root]) is first
    assert registry.list_manifests([root])[0] == [first]
    assert loads == [root / "tiny"]


def test_a_job_whose_family_did_not_change_reads_no_toml(root: Path,
                                                          loads: list[Path]) -> None:
    engine = dni.Engine("cpu", [root])
    warm = engine.family("tiny")
    loads.clear()
    image = np.zeros((8, 8, 3), np.uint8)
    engine.run("tiny", image, strength=0.5)
    engine.run("tiny", image, strength=0.2)
    assert engine.family("tiny") is warm
    assert loads == []


def test_an_edited_manifest_is_seen_at_once(root: Path, loads: list[Path]) -> None:
    engine = dni.Engine("cpu", [root])
    assert families(engine)["tiny"]["title"] == "Tiny"
    warm = engine.family("tiny")
    edit_title(root, "tiny", "Edited")  # stamped now: not trusted yet, so read every time
    assert families(engine)["tiny"]["title"] == "Edited"
    assert engine.family("tiny") is not warm  # a changed manifest reloads the family
    assert engine.family("tiny").manifest.title == "Edited"
    settle(root / "tiny" / "family.toml")
    loads.clear()
    assert registry.find_family("tiny", [root]).title == "Edited"
    assert registry.find_family("tiny", [root]).title == "Edited"
    assert loads == [root / "tiny"]  # once for the new stamp, then from the cache


def test_an_edit_that_keeps_size_and_mtime_is_seen(root: Path, loads: list[Path]) -> None:
    """A copy that restores the old mtime (cp -p, rsync -t) still changes the ctime."""
    manifest = root / "tiny" / "family.toml"
    assert registry.find_family("tiny", [root]).title == "Tiny"
    stat = manifest.stat()
    time.sleep(0.05)  # past the file system clock's tick, so that the ctime moves
    edit_title(root, "tiny", "Tinx")  # same length
    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert manifest.stat().st_size == stat.st_size
    assert registry.find_family("tiny", [root]).title == "Tinx"


def test_an_added_family_is_seen_without_a_restart(root: Path, loads: list[Path]) -> None:
    engine = dni.Engine("cpu", [root])
    assert "tiny" in families(engine) and "added" not in families(engine)
    write_family(root, "added", correlated_states(TINY, 2, seed=9), options=TINY)
    assert "added" in families(engine)
    assert engine.family("added").name == "added"
    # Removing it is seen too.
    settle(root / "added" / "family.toml", root / "added", root)
    assert "added" in families(engine)
    shutil.rmtree(root / "added")
    assert "added" not in families(engine)
    with pytest.raises(FamilyError, match="unknown family 'added'"):
        engine.family("added")


def test_a_manifest_added_to_an_existing_folder_is_seen(root: Path) -> None:
    """Adding family.toml changes the family folder's mtime, not the search folder's."""
    (root / "later").mkdir()
    settle(root / "later", root)
    assert [m.name for m in registry.list_manifests([root])[0]] == ["tiny"]
    shutil.copytree(root / "tiny", root / "later", dirs_exist_ok=True)
    edit = root / "later" / "family.toml"
    edit.write_text(edit.read_text().replace('name = "tiny"', 'name = "later"'))
    assert [m.name for m in registry.list_manifests([root])[0]] == ["later", "tiny"]


def test_a_broken_manifest_is_reported_each_time_and_parsed_once(root: Path,
                                                                  loads: list[Path]) -> None:
    (root / "broken").mkdir()
    (root / "broken" / "family.toml").write_text("this is not toml = = =\n")
    settle(root / "broken" / "family.toml", root / "broken", root)
    for _ in range(3):
        manifests, problems = registry.list_manifests([root])
        assert [m.name for m in manifests] == ["tiny"]
        assert len(problems) == 1 and "not valid TOML" in problems[0]
        with pytest.raises(FamilyError, match="not valid TOML"):
            registry.find_family("broken", [root])
    assert loads.count(root / "broken") == 1
