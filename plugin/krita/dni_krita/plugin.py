"""The Krita plugin's state, in one object: its backend `Session`, the job the docker
shows and what its Re-run repeats. Views (dialog, docker, menus) listen to its signals
instead of reading module globals."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from dni_client import filters
from dni_client.client import Result
from dni_client.errors import FilterError
from dni_client.families import FamilyInfo
from dni_client.geometry import WorkArea
from dni_client.job import Amount
from dni_client.session import JobHandle, Session, Signal

from . import core, layer_records
from .settings import KritaSettings

INSTALLER = "install_krita_plugin.py"

if TYPE_CHECKING:  # collections.abc.Callable[...] fails at run time on Python 3.8
    Finished = Callable[[Any, "str | None"], None]  # (new layer, None) or (None, message)


class MenuEntry(NamedTuple):
    action_id: str
    text: str
    tooltip: str
    task: str


def menu_entries() -> list[MenuEntry]:
    """Filter ▸ DNI: one entry per declared filter (dni_client.filters)."""
    return [MenuEntry("dni_" + f.task.replace("-", "_"), f"{f.title}…", f.blurb, f.task)
            for f in filters.FILTERS]


class LastRun(NamedTuple):
    """What the docker's Re-run repeats: the same layer, family and options."""

    doc: Any
    node: Any
    family: str
    options: core.Options
    layer: Any = None  # the result, once applied


class UndoGrouping(Protocol):
    """Makes the commands of one result one undo step (undo_groups.UndoGroups, which needs
    Krita's widgets; unit tests run without it)."""

    def mark(self, doc: Any) -> Any: ...

    def join(self, doc: Any, mark: Any) -> bool: ...


class Plugin:
    def __init__(self, settings: KritaSettings, session: Session | None = None) -> None:
        self.settings = settings
        self.undo: UndoGrouping | None = None  # set by the extension once Krita is up
        self.session = session or Session(settings.backend, installer=INSTALLER)
        self.last_run: LastRun | None = None
        self.last_job: core.KritaJob | None = None  # the last job applied (scripts, tests)
        self.last_run_changed = Signal()
        self.session.state_changed.connect(self._cache_families)

    def _cache_families(self) -> None:
        if self.session.connected:
            self.settings.cache_families(
                [{"name": f.name, "title": f.title, "task": f.task}
                 for f in self.session.families])

    def known_families(self) -> list[FamilyInfo]:
        """The backend's families, or the last session's while it is not connected."""
        if self.session.families:
            return list(self.session.families)
        return [FamilyInfo.from_dict(f) for f in self.settings.cached_families()]

    def apply(self, job: core.KritaJob, result: Result, in_place_of: Any = None) -> Any:
        """A finished job's result into the document (FilterError if it cannot be); the
        new layer remembers how it was made (re-editable)."""
        mark = self.undo.mark(job.doc) if self.undo is not None else None
        layer = core.apply_result(job, result.width, result.height, result.layout,
                                  result.pixels, in_place_of=in_place_of)
        if self.undo is not None:
            # Enlarging then adding, or adding then removing: one undo step, not two.
            self.undo.join(job.doc, mark)
        layer_records.remember(job, layer)
        self.last_job = job
        return layer

    def _submit(self, job: core.KritaJob, on_finished: Finished,
                in_place_of: Any = None) -> JobHandle:
        def event(handle: JobHandle) -> None:
            if not handle.done:
                return
            try:
                if handle.error is not None:
                    raise handle.error
                assert handle.result is not None
                layer = self.apply(job, handle.result, in_place_of)
            except FilterError as exc:
                on_finished(None, str(exc))
                return
            if self.last_run is not None and self.last_run.node is job.node:
                self.last_run = self.last_run._replace(layer=layer)
                self.last_run_changed.emit()
            on_finished(layer, None)

        handle = self.session.submit(job.spec, event)
        self.last_run = LastRun(job.doc, job.node, job.spec.family.name, job.options)
        self.last_run_changed.emit()
        return handle

    def start_job(self, doc: Any, node: Any, family: FamilyInfo, options: core.Options,
                  on_finished: Finished) -> JobHandle:
        """Read the pixels now, run on the backend, apply when the answer arrives (GUI
        thread). FilterError for problems found before anything was sent."""
        return self._submit(core.prepare(doc, node, family, options), on_finished)

    def rerender(self, doc: Any, layer: Any, amount: Amount | None,
                 on_finished: Finished) -> JobHandle:
        """Make a re-editable DNI layer again from its source (as it is now), over the
        same area and selection, with `amount` (None: its own); the new layer takes its
        place. FilterError when the layer has no record or its source is gone."""
        record = layer_records.record_of(doc, layer)
        if record is None:
            raise FilterError(f"'{layer.name()}' was not made by DNI on this image, so "
                              "there is nothing to re-render.")
        source = layer_records.source_of(doc, record)
        if source is None:
            raise FilterError(f"The layer '{layer.name()}' was made from has been deleted; "
                              "it cannot be re-rendered.")
        amount = amount or Amount(record.strength, record.weights)
        options = core.Options(amount=amount, mode=record.mode)
        again: tuple[WorkArea, bytes | None] = (record.area, record.mask)
        job = core.prepare(doc, source, self.session.family(record.family), options,
                           again=again)
        return self._submit(job, on_finished, in_place_of=layer)

    def shutdown(self) -> None:
        self.session.shutdown()


_instance: Plugin | None = None


def instance() -> Plugin:
    """The plugin's one Plugin (made on first use from the saved settings)."""
    global _instance
    if _instance is None:
        _instance = Plugin(KritaSettings.load())
    return _instance


def replace(plugin: Plugin | None) -> None:
    """Swap the Plugin (tests; settings that need a fresh start)."""
    global _instance
    if _instance is not None and plugin is not _instance:
        _instance.shutdown()
        if plugin is not None and plugin.undo is None:
            plugin.undo = _instance.undo  # Krita's history is the same one
    _instance = plugin
