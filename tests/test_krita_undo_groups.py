"""plugin/krita/dni_krita/undo_groups.py on Qt 6 offscreen: the commands of one result,
joined, are undone and redone as one step; a history that changed under a group is left
alone. The history is a real Qt item model with a real selection model standing in for
Krita's Undo History docker (the real one is driven by tests/e2e_krita)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_offscreen

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("PyQt6.QtWidgets", reason="PyQt6 is in the test extras "
                    "(pip install -e '.[test]'); without it the undo groups are not tested")

SCRIPT = r'''
import json, sys, time, types
pykrita = types.ModuleType("pykrita")
pykrita.qt_major_version = lambda: 6
sys.modules["pykrita"] = pykrita
sys.path[:0] = [sys.argv[1] + "/plugin", sys.argv[1] + "/plugin/krita"]
from PyQt6.QtCore import QItemSelectionModel
from PyQt6.QtGui import QStandardItem, QStandardItemModel
from PyQt6.QtWidgets import QApplication
qapp = QApplication(["krita"])

model = QStandardItemModel()
selection = QItemSelectionModel(model)
done = []  # the undo/redo actions triggered

def history(*names):
    model.clear()
    for name in names:
        model.appendRow(QStandardItem(name))

def go_to(row):  # what Krita's history list does after an undo or redo
    selection.setCurrentIndex(model.index(row, 0),
                              QItemSelectionModel.SelectionFlag.ClearAndSelect)

class Root:
    def uniqueId(self): return "doc-1"
class Doc:
    def rootNode(self): return Root()
    def waitForDone(self): pass
class Action:
    def __init__(self, name): self.name = name
    def trigger(self):
        done.append(self.name)
        go_to(selection.currentIndex().row() + (-1 if self.name == "edit_undo" else 1))
class App:
    _dni_fake_no_register = True  # importing dni_krita registers nothing here
    doc = Doc()
    def activeDocument(self): return self.doc
    def action(self, name): return Action(name)
krita = types.ModuleType("krita")
krita.Krita = types.SimpleNamespace(instance=lambda: App.app)
App.app = App()
sys.modules["krita"] = krita

from dni_krita import canvas_view, undo_groups
canvas_view.undo_position = lambda doc: (model.rowCount(), selection.currentIndex().row())
canvas_view.undo_names = lambda doc: [model.item(r).text() for r in range(model.rowCount())]
canvas_view.undo_selection_model = lambda: selection

def settle():
    for _ in range(50):
        qapp.processEvents()
        time.sleep(0.002)

out = {}
groups = undo_groups.UndoGroups()
doc = App.doc
history("<empty>", "Add Layer")
go_to(1)
mark = groups.mark(doc)
history("<empty>", "Add Layer", "Composition Mode Change", "Add Layer", "Remove Layer")
go_to(4)
out["joined"] = groups.join(doc, mark)
settle()
go_to(3)  # Ctrl+Z
settle()
out["undo"] = [selection.currentIndex().row(), list(done)]
done.clear()
go_to(2)  # Ctrl+Shift+Z
settle()
out["redo"] = [selection.currentIndex().row(), list(done)]
done.clear()
# One command is nothing to join.
mark = groups.mark(doc)
history("<empty>", "Add Layer", "Composition Mode Change", "Add Layer", "Remove Layer",
        "Add Layer")
go_to(5)
out["single"] = groups.join(doc, mark)
settle()
# The group undone, then something else done: its rows now hold other commands.
go_to(1)
settle()
done.clear()
history("<empty>", "Add Layer", "Fill", "Brush Stroke", "Move")
go_to(4)
settle()
go_to(3)
settle()
out["changed"] = [selection.currentIndex().row(), list(done)]
# Right after a layer was added the history list's current row still lags (row 0 here):
# the group is what the operation pushed, not also the command before it.
lagging = undo_groups.UndoGroups()
history("<empty>", "Add Layer")
go_to(0)
mark = lagging.mark(doc)
history("<empty>", "Add Layer", "Composition Mode Change", "Add Layer", "Remove Layer")
go_to(4)
lagging.join(doc, mark)
out["lagging"] = [[g.first, list(g.names)] for g in lagging._groups["doc-1"]]
print("RESULT " + json.dumps(out))
'''


def test_one_undo_and_one_redo_cross_a_joined_group() -> None:
    out = run_offscreen(SCRIPT, ROOT)
    assert out["joined"] is True
    # From row 4 (after "Remove Layer") one undo lands on 3; the group steps on to 1, the
    # history before the re-render: two more undos by itself.
    assert out["undo"] == [1, ["edit_undo", "edit_undo"]], out["undo"]
    # One redo from there lands on 2, inside the group: on to 4.
    assert out["redo"] == [4, ["edit_redo", "edit_redo"]], out["redo"]
    assert out["single"] is False
    # Rows 2-4 hold other commands now: an undo there is an ordinary one.
    assert out["changed"] == [3, []], out["changed"]
    assert out["lagging"] == [[2, ["Composition Mode Change", "Add Layer", "Remove Layer"]]]
