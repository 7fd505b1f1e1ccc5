"""Fake GTK 3: the widgets the DNI dialog builds, with GTK's signal rules (a setter emits
its signal only when the value changes). Tests play the user through `click()`,
`set_value()`, `set_active()` and `set_active_id()`; the dialog's answer comes from
`GimpUi.Dialog.next_response`."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any


class Orientation(enum.IntEnum):
    HORIZONTAL = 0
    VERTICAL = 1


class ResponseType(enum.IntEnum):
    NONE = -1
    OK = -5
    CANCEL = -6


class Widget:
    def __init__(self, **props: Any) -> None:
        self.props = dict(props)
        self.visible = False
        self.no_show_all = False
        self.sensitive = True
        self.focused = False
        self.children: list[Widget] = []
        self._handlers: dict[str, list[Callable[..., Any]]] = {}

    def connect(self, signal: str, handler: Callable[..., Any]) -> int:
        self._handlers.setdefault(signal, []).append(handler)
        return len(self._handlers[signal])

    def emit(self, signal: str, *args: Any) -> None:
        for handler in list(self._handlers.get(signal, [])):
            handler(self, *args)

    def set_visible(self, visible: bool) -> None:
        self.visible = bool(visible)

    def get_visible(self) -> bool:
        return self.visible

    def set_no_show_all(self, value: bool) -> None:
        self.no_show_all = bool(value)

    def show_all(self) -> None:
        if self.no_show_all:
            return
        self.visible = True
        for child in self.children:
            child.show_all()

    def set_sensitive(self, value: bool) -> None:
        self.sensitive = bool(value)

    def get_sensitive(self) -> bool:
        return self.sensitive

    def set_hexpand(self, value: bool) -> None:
        self.props["hexpand"] = value

    def grab_focus(self) -> None:
        self.focused = True

    def get_children(self) -> list[Widget]:
        return list(self.children)

    def destroy(self) -> None:
        self.props["destroyed"] = True


class Adjustment:
    def __init__(self, value: float = 0.0, lower: float = 0.0, upper: float = 1.0,
                 step_increment: float = 0.1, page_increment: float = 0.1) -> None:
        self.lower, self.upper = lower, upper
        self.value = min(max(value, lower), upper)
        self._handlers: list[Callable[..., Any]] = []

    def connect(self, signal: str, handler: Callable[..., Any]) -> int:
        assert signal == "value-changed"
        self._handlers.append(handler)
        return len(self._handlers)

    def get_value(self) -> float:
        return self.value

    def set_value(self, value: float) -> None:
        value = min(max(float(value), self.lower), self.upper)
        if value != self.value:
            self.value = value
            for handler in list(self._handlers):
                handler(self)


class Box(Widget):
    def pack_start(self, child: Widget, expand: bool, fill: bool, padding: int) -> None:
        self.children.append(child)

    def pack_end(self, child: Widget, expand: bool, fill: bool, padding: int) -> None:
        self.children.append(child)


class Grid(Widget):
    def attach(self, child: Widget, left: int, top: int, width: int, height: int) -> None:
        child.props["cell"] = (left, top)
        self.children.append(child)

    def remove(self, child: Widget) -> None:
        self.children.remove(child)

    def child_at(self, left: int, top: int) -> Widget | None:
        return next((c for c in self.children if c.props.get("cell") == (left, top)), None)


class Label(Widget):
    def __init__(self, label: str = "", **props: Any) -> None:
        super().__init__(**props)
        self.text = label

    def set_text(self, text: str) -> None:
        self.text = text

    def get_text(self) -> str:
        return self.text

    def set_markup(self, markup: str) -> None:
        self.text = markup


class Scale(Widget):
    def __init__(self, orientation: Orientation = Orientation.HORIZONTAL,
                 adjustment: Adjustment | None = None, **props: Any) -> None:
        super().__init__(**props)
        self.adjustment = adjustment or Adjustment()

    def set_draw_value(self, value: bool) -> None:
        self.props["draw_value"] = value


class Entry(Widget):
    def __init__(self, **props: Any) -> None:
        super().__init__(**props)
        self.text = ""
        self.activates_default = False

    def get_text(self) -> str:
        return self.text

    def set_text(self, text: str) -> None:
        self.text = text

    def set_activates_default(self, value: bool) -> None:
        self.activates_default = bool(value)


class SpinButton(Entry):
    def __init__(self, adjustment: Adjustment | None = None, climb_rate: float = 0.0,
                 digits: int = 0, **props: Any) -> None:
        super().__init__(**props)
        self.adjustment = adjustment or Adjustment()
        self.digits = digits


class Button(Widget):
    def __init__(self, label: str = "", **props: Any) -> None:
        super().__init__(**props)
        self.label = label

    def set_label(self, label: str) -> None:
        self.label = label

    def get_label(self) -> str:
        return self.label

    def click(self) -> None:
        """Test helper: what a click does."""
        if self.sensitive:
            self.emit("clicked")


class CheckButton(Button):
    def __init__(self, label: str = "", **props: Any) -> None:
        super().__init__(label, **props)
        self.active = False

    def get_active(self) -> bool:
        return self.active

    def set_active(self, value: bool) -> None:
        if bool(value) != self.active:
            self.active = bool(value)
            self.emit("toggled")

    def click(self) -> None:
        if self.sensitive:
            self.set_active(not self.active)


class ComboBoxText(Widget):
    def __init__(self, **props: Any) -> None:
        super().__init__(**props)
        self.items: list[tuple[str, str]] = []
        self.active: str | None = None

    def append(self, item_id: str, text: str) -> None:
        self.items.append((item_id, text))

    def remove_all(self) -> None:
        self.items = []
        if self.active is not None:
            self.active = None
            self.emit("changed")

    def get_active_id(self) -> str | None:
        return self.active

    def set_active_id(self, item_id: str | None) -> bool:
        if item_id is not None and item_id not in [i for i, _ in self.items]:
            return False
        if item_id != self.active:
            self.active = item_id
            self.emit("changed")
        return True

    def texts(self) -> list[str]:
        return [t for _, t in self.items]
