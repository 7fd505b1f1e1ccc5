"""The "Get more families…" list, as both editors show it: the backend's catalogue, each
family's licence and size, and the state of its install. A host dialog is a view over
`CatalogueModel`: it lists `items`, calls `install` / `cancel`, and redraws on `changed`.
Events arrive through `Session.tick()` (Krita's timer) or a host pump (GIMP).
"""

from __future__ import annotations

from typing import Any

from .client import Event
from .errors import BackendError
from .session import Session, Signal

AVAILABLE = "available"
INSTALLING = "installing"
INSTALLED = "installed"
FAILED = "failed"


def size_text(size: int) -> str:
    """Bytes in the units a download dialog uses."""
    if size >= 10**9:
        return f"{size / 10**9:.1f} GB"
    if size >= 10**6:
        return f"{size / 10**6:.0f} MB" if size >= 10**7 else f"{size / 10**6:.1f} MB"
    return f"{max(size, 0) / 10**3:.0f} kB"


class CatalogueItem:
    """One family the backend can download, and where its install stands."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.name = str(info.get("name", ""))
        self.title = str(info.get("title") or self.name)
        self.description = str(info.get("description", ""))
        self.licence = str(info.get("licence", ""))
        self.homepage = str(info.get("homepage", ""))
        self.size = int(info.get("size") or 0)
        axis = info.get("axis") or {}
        self.low = str(axis.get("low", ""))
        self.high = str(axis.get("high", ""))
        self.state = INSTALLED if info.get("installed") else AVAILABLE
        self.fraction = 0.0
        self.message = ""
        self.install_id = ""

    @property
    def size_text(self) -> str:
        return size_text(self.size)

    @property
    def status_text(self) -> str:
        if self.state == INSTALLING:
            if self.fraction >= 1.0:
                return "Checking…"
            return f"Downloading… {self.fraction * 100:.0f} %"
        if self.state == INSTALLED:
            return "Installed" + (f" ({self.message})" if self.message else "")
        if self.state == FAILED:
            return f"Failed: {self.message}"
        return self.message or "Not installed"

    @property
    def tooltip(self) -> str:
        lines = [self.description, f"Slider: {self.low} → {self.high}",
                 f"Licence: {self.licence}", self.homepage]
        return "\n".join(line for line in lines if line)

    @property
    def can_install(self) -> bool:
        return self.state in (AVAILABLE, FAILED)


class CatalogueModel:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.items: list[CatalogueItem] = []
        self.error = ""
        self.changed = Signal()  # (): redraw

    def refresh(self) -> None:
        """Ask the backend for its catalogue (keeps the state of installs in flight)."""
        busy = {i.name: i for i in self.items if i.state == INSTALLING}
        try:
            listed = self.session.catalogue()
        except BackendError as exc:
            self.error = str(exc)
        else:
            self.error = ""
            self.items = [busy.get(str(info.get("name"))) or CatalogueItem(info)
                          for info in listed]
        self.changed.emit()

    def item(self, name: str) -> CatalogueItem:
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(name)

    @property
    def installing(self) -> bool:
        return any(item.state == INSTALLING for item in self.items)

    def install(self, name: str) -> None:
        item = self.item(name)
        if not item.can_install:
            return
        item.state, item.fraction, item.message = INSTALLING, 0.0, ""
        try:
            item.install_id = self.session.install(name, lambda event: self._event(item, event))
        except BackendError as exc:
            item.state, item.message = FAILED, str(exc)
        self.changed.emit()

    def cancel(self, name: str) -> None:
        item = self.item(name)
        if item.state == INSTALLING and item.install_id:
            self.session.cancel_install(item.install_id)

    def _event(self, item: CatalogueItem, event: Event) -> None:
        if event.kind == "progress":
            item.fraction = event.fraction
        elif event.kind == "installed":
            item.state, item.fraction = INSTALLED, 1.0
            item.message = _verdict_text(event.header.get("verdicts"))
        elif event.code == "cancelled":
            item.state, item.message = AVAILABLE, "Cancelled (the next try resumes it)"
        else:
            item.state, item.message = FAILED, event.message or event.code
        self.changed.emit()


def _verdict_text(verdicts: Any) -> str:
    """The paper's eq. 3 verdict in a few words: how well the ends blend."""
    if not isinstance(verdicts, list) or not verdicts:
        return ""
    worst = min((v for v in verdicts if isinstance(v, dict)),
                key=lambda v: float(v.get("median", 0.0)), default=None)
    if worst is None:
        return ""
    return f"members {worst.get('verdict', '?')}, filter correlation {worst.get('median')}"
