"""One run of the installer: what it will do (the plan, printed by --dry-run), doing it
(backend, torch, plugins, the record), undoing it (--uninstall), and the summary."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import backend, editors, locations, plugins, torch_choice
from .platform import Platform
from .record import InstallRecord, remove_path

Say = Callable[[str], None]
Runner = Callable[[Sequence[str], Say, str], None]


@dataclass
class Options:
    sources: backend.Sources = field(default_factory=backend.Sources)
    prefix: Path | None = None
    venv: Path | None = None  # default <prefix>/venv; given, the record goes inside it
    torch: str | None = None  # None: detect
    plugins: bool = True
    point: list[Path] = field(default_factory=list)  # installed plugin folders to point
    endpoint: str | None = None
    family_paths: list[str] = field(default_factory=list)


class Installer:
    """Decisions come from the Platform; commands go through `runner` (pip, venv) and the
    plugin `source` (None: no plugin sources here, only point installed plugins)."""

    def __init__(self, p: Platform, options: Options, *, say: Say = print,
                 runner: Runner = backend.run_step,
                 plugin_source: Callable[[Path], Any] | None = None) -> None:
        self.p = p
        self.options = options
        self.say = say
        self.runner = runner
        self.plugin_source = plugin_source  # venv python -> plugins.CheckoutPlugins
        self.prefix = options.prefix or locations.data_dir(p)
        self.venv = options.venv or self.prefix / "venv"
        record_dir = self.venv if options.venv else self.prefix
        self.record = InstallRecord.load(record_dir / locations.RECORD)
        self._steps = (0, 1)  # (begun, total): "[2/5] installing torch" lines for progress

    def _step(self, text: str) -> None:
        begun, total = self._steps
        self._steps = (begun + 1, total)
        self.say(f"[{begun + 1}/{total}] {text}")

    @property
    def python(self) -> Path:
        return locations.venv_python(self.venv, self.p)

    @property
    def command(self) -> list[str]:
        return [str(locations.venv_dni(self.venv, self.p))]

    # -- deciding ------------------------------------------------------------------------

    def torch(self) -> torch_choice.TorchChoice:
        """The torch build and where it comes from: --torch-index-url, else a given
        --index-url (a private or offline index is meant to be the only source), else the
        choice's own index."""
        choice = torch_choice.choose(self.p, self.options.torch)
        sources = self.options.sources
        given = sources.torch_index_url or sources.index_url
        return dataclasses.replace(choice, index_url=given) if given else choice

    def targets(self) -> list[editors.PluginTarget]:
        if not self.options.plugins or self.options.point:
            return []
        return editors.krita_targets(self.p) + editors.gimp_targets(self.p)

    def plan(self) -> list[str]:
        """What a run will do, one line per step (--dry-run prints these)."""
        choice = self.torch()
        upgrade = backend.venv_works(self.venv, self.p)
        lines = [f"{'keep' if upgrade else 'create'} the backend's environment {self.venv}"
                 + (" (upgrade in place)" if upgrade else ""),
                 choice.describe(),
                 f"install the backend from {self.options.sources.describe()}"]
        targets = self.targets()
        for target in targets:
            found = "; ".join(i.describe() for i in target.installs) or "its folder exists"
            how = "detected" if target.pythons_detected else "not detected: all known"
            lines.append(f"{target.editor} plugin into {target.folder} (for {found}; pyzmq "
                         f"for Python {', '.join(target.pythons)}, {how})")
        looked = self.options.plugins and not self.options.point
        editors_found = {t.editor for t in targets}
        if looked and "krita" not in editors_found:
            lines.append("no Krita found: no Krita plugin")
        if looked and "gimp" not in editors_found:
            lines.append("no GIMP 3 found: no GIMP plug-in")
        for folder in self.options.point:
            lines.append(f"point the plugin in {folder} at the backend")
        lines.append(f"write the install record {self.record.path}")
        return lines

    # -- doing ---------------------------------------------------------------------------

    def _environment(self) -> bool:
        """Create the backend's environment, or keep a working one; True when made now."""
        state = backend.venv_state(self.venv, self.p)
        if state == "working":
            self._step(f"keeping {self.venv} (upgrading in place)")
            return False
        if state == "foreign":
            raise backend.InstallError(f"{self.venv} exists and is not a Python environment: "
                                       "choose another --prefix or --venv.")
        self._step(f"creating the backend's environment {self.venv}")
        argv = backend.venv_command(backend.base_python(self.p), self.venv)
        self.runner(argv + (["--clear"] if state == "broken" else []), self.say,
                    "creating the backend's environment")
        return True

    def _backend(self, choice: torch_choice.TorchChoice) -> str:
        sources = self.options.sources
        made = False
        try:
            made = self._environment()
            self._step(choice.describe())
            torch_argv = backend.torch_command(self.python, choice, sources)
            if torch_argv:
                self.runner(torch_argv, self.say, "installing torch")
            self._step(f"installing the backend from {sources.describe()}")
            self.runner(backend.package_command(self.python, sources), self.say,
                        "installing the backend")
            versions = backend.installed_versions(self.venv, self.p)
        except backend.InstallError:
            if made:  # a half-made environment is of no use: leave nothing behind
                remove_path(self.venv)
                self.say(f"removed the unfinished {self.venv}")
            raise
        self.record.add(self.venv)
        return versions

    def _plugins(self, targets: list[editors.PluginTarget]) -> list[str]:
        done: list[str] = []
        for folder in self.options.point:
            self._step(f"pointing the plugin in {folder} at the backend")
            path = plugins.point(folder, self.command)
            done.append(f"plugin in {folder} now starts {self.command[0]} ({path.name})")
        if not targets:
            return done
        if self.plugin_source is None:
            return done + ["plugins: no plugin sources next to this installer (run it from "
                           "the DNI checkout or release folder to install them)"]
        source = self.plugin_source(self.python)
        settings = {"command": self.command, "family_paths": [
            str(Path(f).absolute()) for f in self.options.family_paths]}
        if self.options.endpoint:
            settings["endpoint"] = self.options.endpoint
        for target in targets:
            self._step(f"installing the {target.editor} plugin into {target.folder}")
            plugins.place(target, source, settings, self.record)
            done.append(f"{target.editor} plugin: {target.folder} (pyzmq for Python "
                        f"{', '.join(target.pythons)})")
        return done

    def install(self) -> list[str]:
        """Install or upgrade; returns the summary lines."""
        choice = self.torch()
        targets = self.targets()
        self._steps = (0, 3 + len(self.options.point) + len(targets))
        folder = self.record.path.parent
        made_folder = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            versions = self._backend(choice)
        except backend.InstallError:
            if made_folder and not any(folder.iterdir()):
                folder.rmdir()
            raise
        self.record.details.update({"torch": choice.variant, "installed": versions})
        self.record.version = versions.split(",")[0].replace("dni ", "")
        self.record.save()  # the backend is there: uninstall can remove it even if a
        # plugin step fails
        done = self._plugins(targets)
        self.record.save()
        return [f"backend: {self.venv} ({versions})", choice.describe(),
                f"backend command the plugins start: {self.command[0]}", *done,
                f"record of what was written: {self.record.path}"]

    def uninstall(self) -> list[str]:
        """Remove everything the record lists (and nothing else)."""
        if not self.record.path.exists():
            return [f"nothing to remove: no install record at {self.record.path}"]
        removed = [str(path) for path in map(Path, reversed(self.record.paths))
                   if remove_path(path)]
        plugins.remove_kritarc_lines(self.record.kritarcs)
        self.record.path.unlink(missing_ok=True)  # gone with the venv when inside it
        if self.prefix.is_dir() and not any(self.prefix.iterdir()):
            self.prefix.rmdir()
        lines = [f"removed {path}" for path in removed]
        lines += [f"disabled the plugin in {rc}" for rc in self.record.kritarcs]
        return lines or ["the install record listed nothing that is still there"]
