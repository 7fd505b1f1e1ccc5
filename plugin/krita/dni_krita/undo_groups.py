"""Several of Krita's undo steps that the artist meets as one.

Putting a result in place of a layer is "add the new layer", "give it the old one's
look", "remove the old one": several commands in Krita's history, and libkis (5.1 to
6.x) has no way to group them. So the plugin remembers such groups and watches the Undo
History docker (which follows the active document): whenever the history comes to rest
inside a group, one more undo or redo is triggered in the direction it was going, until
it is at either end. One Ctrl+Z then brings the old layer back and one Ctrl+Shift+Z the
new one; clicking a row in the history works the same way.

A group is only kept while the history still holds its commands at the same rows with
the same names; anything else (other commands pushed over an undone group, Krita's
history limit dropping old rows) forgets it, and its commands are then ordinary steps.
Without the docker nothing is grouped.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from krita import Krita

from . import canvas_view
from .qt import QObject, QTimer


class Mark(NamedTuple):
    """What the history held before an operation: the document and its rows' names."""

    doc_id: str
    names: tuple[str, ...]


class _Group(NamedTuple):
    first: int  # history row of the first command
    names: tuple[str, ...]

    @property
    def last(self) -> int:
        return self.first + len(self.names) - 1

    def holds(self, names: list[str]) -> bool:
        return tuple(names[self.first:self.last + 1]) == self.names


def _doc_id(doc: Any) -> str:
    return str(doc.rootNode().uniqueId())


class UndoGroups(QObject):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._groups: dict[str, list[_Group]] = {}
        self._watched: Any = None  # the history list's selection model we listen to
        self._rows: dict[str, int] = {}  # each document's history row, last seen
        self.steps_taken = 0  # extra undo/redo steps (scripts and tests read it)

    def mark(self, doc: Any) -> Mark | None:
        """Call before an operation; None without the docker."""
        names = canvas_view.undo_names(doc)
        return Mark(_doc_id(doc), tuple(names)) if names is not None else None

    def join(self, doc: Any, mark: Mark | None) -> bool:
        """After the operation: the commands pushed since `mark`, if more than one, become
        one step. Whether they were joined."""
        if mark is None or _doc_id(doc) != mark.doc_id:
            return False
        names = canvas_view.undo_names(doc)
        if names is None:
            return False
        # New commands end the history (an undone tail is dropped): they start at the
        # first row that differs from the mark's. The list's current row is no guide
        # here: right after commands are pushed it lags behind them, and a group
        # reaching back to older commands would undo more than this operation.
        same = min(len(mark.names), len(names))  # (no zip(strict=): Python 3.8 in Krita)
        first = next((i for i in range(same) if mark.names[i] != names[i]), same)
        last = len(names) - 1
        if last - first < 1:
            return False  # one command or none: nothing to join
        groups = [g for g in self._groups.get(mark.doc_id, []) if g.last < first]
        groups.append(_Group(first, tuple(names[first:last + 1])))
        self._groups[mark.doc_id] = groups
        self._rows[mark.doc_id] = last  # where a first undo is measured from
        self._watch()
        return True

    def _watch(self) -> None:
        selection = canvas_view.undo_selection_model()
        if selection is None or selection is self._watched:
            return
        if self._watched is not None:
            self._watched.currentChanged.disconnect(self._moved)
        selection.currentChanged.connect(self._moved)
        self._watched = selection

    def _moved(self, *_: Any) -> None:
        # The list resets and reselects on every change (its "previous" row is always
        # invalid) and may lag behind the history: read it once it has settled.
        QTimer.singleShot(0, self._settled)

    def _settled(self) -> None:
        doc = Krita.instance().activeDocument()
        key = _doc_id(doc) if doc is not None else None
        position = canvas_view.undo_position(doc) if key in self._groups else None
        names = canvas_view.undo_names(doc) if position is not None else None
        if key is None or position is None or names is None:
            return
        row, before = position[1], self._rows.get(key)
        self._rows[key] = row
        self._groups[key] = kept = [g for g in self._groups[key] if g.holds(names)]
        # Resting at row r means commands up to r are done: inside a group is first..last-1.
        if before is None or row == before or not any(g.first <= row < g.last for g in kept):
            return
        action = "edit_undo" if row < before else "edit_redo"
        QTimer.singleShot(0, lambda: self._step(doc, action))  # lands here again

    def _step(self, doc: Any, action: str) -> None:
        Krita.instance().action(action).trigger()
        doc.waitForDone()  # the undo runs as a stroke: let it finish first
        self.steps_taken += 1


_groups: UndoGroups | None = None


def groups() -> UndoGroups:
    """The plugin's one UndoGroups (its groups outlive any dialog)."""
    global _groups
    if _groups is None:
        _groups = UndoGroups()
    return _groups
