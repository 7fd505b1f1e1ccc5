"""Get more families… for GIMP (GimpUi + GTK 3): the backend's catalogue with licence and
size, an Install / Cancel button per family and its progress; a view over
`dni_client.catalogue_model.CatalogueModel`. GIMP runs no event loop of ours, so a GLib
timer ticks the session while the dialog is open.
"""

from __future__ import annotations

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("GimpUi", "3.0")
from gi.repository import GimpUi, GLib, Gtk  # noqa: E402

from dni_client.catalogue_model import INSTALLING, CatalogueItem, CatalogueModel  # noqa: E402
from dni_client.session import Session  # noqa: E402

_TICK_MS = 50


class _Row:
    def __init__(self, grid: Gtk.Grid, top: int, item: CatalogueItem,
                 model: CatalogueModel) -> None:
        self.name = item.name
        self.title = Gtk.Label(label="")
        self.title.set_markup(f"<b>{GLib.markup_escape_text(item.title)}</b>\n"
                              f"{GLib.markup_escape_text(f'{item.low} → {item.high}')}")
        self.licence = Gtk.Label(label=item.licence)
        self.size = Gtk.Label(label=item.size_text)
        self.status = Gtk.Label(label="")
        self.button = Gtk.Button(label="Install")
        self.button.connect("clicked", lambda _b: self._clicked(model))
        for left, widget in enumerate((self.title, self.licence, self.size, self.status,
                                       self.button)):
            grid.attach(widget, left, top, 1, 1)

    def _clicked(self, model: CatalogueModel) -> None:
        item = model.item(self.name)
        if item.state == INSTALLING:
            model.cancel(item.name)
        else:
            model.install(item.name)

    def show(self, item: CatalogueItem) -> None:
        self.status.set_text(item.status_text)
        self.button.set_label("Cancel" if item.state == INSTALLING else "Install")
        self.button.set_sensitive(item.state == INSTALLING or item.can_install)


class GetFamiliesDialog:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.model = CatalogueModel(session)
        self.dialog = GimpUi.Dialog(title="Get more DNI families", role="dni-get-families")
        self.dialog.add_button("_Close", Gtk.ResponseType.CANCEL)
        box = self.dialog.get_content_area()
        self.note = Gtk.Label(label="Families the backend can download. Each file is checked "
                                    "against its published SHA-256 before the family appears.")
        box.pack_start(self.note, False, False, 0)
        self.grid = Gtk.Grid()
        box.pack_start(self.grid, True, True, 0)
        self.rows: dict[str, _Row] = {}
        self.model.changed.connect(self._show)
        self.model.refresh()

    def _show(self) -> None:
        if self.model.error:
            self.note.set_text(self.model.error)
        for top, item in enumerate(self.model.items):
            row = self.rows.get(item.name)
            if row is None:
                row = self.rows[item.name] = _Row(self.grid, top, item, self.model)
            row.show(item)
        self.grid.show_all()

    def tick(self) -> bool:
        """The GLib timer: deliver the backend's events (True: keep the timer)."""
        self.session.tick()
        return True

    def run(self) -> None:
        """Show the dialog until closed. A download still running is cancelled: the
        backend a GIMP procedure started stops with it (the next try resumes the file)."""
        self.dialog.show_all()
        timer = GLib.timeout_add(_TICK_MS, self.tick)
        try:
            self.dialog.run()
        finally:
            GLib.source_remove(timer)
            for item in self.model.items:
                self.model.cancel(item.name)
            self.dialog.destroy()


def run_get_families(session: Session) -> None:
    GetFamiliesDialog(session).run()


def open_with_new_session() -> None:
    """What a GIMP procedure runs: connect (starting the backend when needed), show the
    dialog, then let the session go. FilterError when the backend cannot be reached."""
    import dni_gimp

    session = dni_gimp.new_session(dni_gimp.load_settings())
    progress: dni_gimp.Progress | None = dni_gimp.Progress("DNI: connecting...")
    try:
        dni_gimp.connect(session, progress)
        progress.end()
        progress = None
        run_get_families(session)
    finally:
        if progress is not None:
            progress.end()
        session.shutdown()
