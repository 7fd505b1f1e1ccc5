"""Fake GimpUi: `init` and a `Dialog` whose `run()` answers what the test queued."""

from __future__ import annotations

from typing import Any

from . import Gtk

INITS: list[str] = []


def init(prog_name: str) -> None:
    INITS.append(prog_name)


class Dialog(Gtk.Widget):
    next_response: Any = Gtk.ResponseType.OK  # what the user will do
    before_response: Any = None  # callable(dialog): the user's actions while it is open
    last: Dialog | None = None

    def __init__(self, title: str = "", role: str = "", **props: Any) -> None:
        super().__init__(title=title, role=role, **props)
        self.buttons: list[tuple[str, Any]] = []
        self.default_response: Any = None
        self.content = Gtk.Box()
        self.children.append(self.content)
        Dialog.last = self

    def add_button(self, label: str, response: Any) -> Gtk.Button:
        self.buttons.append((label, response))
        return Gtk.Button(label=label)

    def set_default_response(self, response: Any) -> None:
        self.default_response = response

    def get_content_area(self) -> Gtk.Box:
        return self.content

    def run(self) -> Any:
        if Dialog.before_response is not None:
            Dialog.before_response(self)
        return Dialog.next_response
