"""Install DNI backend… / Update DNI backend… in GIMP (GTK 3): the GIMP view over
dni_client.install_offer. Shows the offer; only on the artist's click runs the installer
the plug-in carries (`_installer/install.py`), polling it from a GLib timer: progress bar,
output lines, a log file. `run_install_dialog` returns True once the backend is installed
(the caller then reads backend.json again and connects)."""

from __future__ import annotations

import os

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import GLib, Gtk  # noqa: E402

from dni_client import install_offer, launcher  # noqa: E402
from dni_client.install_offer import InstallRequest, InstallRun, Offer  # noqa: E402

POLL_MS = 200
NO_PYTHON = ("Installing the backend needs Python 3.9 or newer on this computer (the "
             "installer then fetches what else it needs). Install it from python.org, then "
             "try again.")
NO_INSTALLER = ("This copy of the plug-in carries no installer. Install DNI with "
                "installers/install.py from the DNI download.")
RESPONSE_START = 1


class InstallDialog:
    def __init__(self, offer: Offer, plugin_dir: str, log_dir: str) -> None:
        self.plugin_dir = plugin_dir
        self.log_path = os.path.join(log_dir, "install.log")
        self.run: InstallRun | None = None
        self.installed = False
        update = offer.kind == install_offer.UPDATE
        self.dialog = Gtk.Dialog(title="Update DNI backend" if update
                                 else "Install DNI backend")
        self.dialog.set_default_size(640, 420)
        self.start_button = self.dialog.add_button("_Update" if update else "_Install",
                                                   RESPONSE_START)
        self.close_button = self.dialog.add_button("_Cancel", Gtk.ResponseType.CANCEL)
        box = self.dialog.get_content_area()
        box.set_spacing(6)
        self.message = Gtk.Label(label=offer.message, wrap=True, xalign=0)
        box.pack_start(self.message, False, False, 0)
        self.wheel = Gtk.FileChooserButton(title="DNI wheel (empty: download)",
                                           action=Gtk.FileChooserAction.OPEN)
        box.pack_start(self.wheel, False, False, 0)
        self.index_url = Gtk.Entry(placeholder_text="package index (empty: PyPI)")
        box.pack_start(self.index_url, False, False, 0)
        self.progress = Gtk.ProgressBar(show_text=True)
        box.pack_start(self.progress, False, False, 0)
        self.output = Gtk.TextView(editable=False, monospace=True)
        scroller = Gtk.ScrolledWindow()
        scroller.add(self.output)
        box.pack_start(scroller, True, True, 0)
        self.dialog.connect("response", self._response)
        self.dialog.show_all()

    def request(self) -> InstallRequest | str:
        installer = install_offer.installer_path(self.plugin_dir)
        if installer is None:
            return NO_INSTALLER
        python = install_offer.find_python()
        if python is None:
            return NO_PYTHON
        return InstallRequest(installer, python, wheel=self.wheel.get_filename() or None,
                              index_url=self.index_url.get_text().strip() or None,
                              point=[self.plugin_dir])

    def _response(self, _dialog: Gtk.Dialog, response: int) -> None:
        if response == RESPONSE_START:
            self._start()
            return
        if self.run is not None and not self.run.finished():
            self.run.cancel()
        Gtk.main_quit()

    def _start(self) -> None:
        request = self.request()
        if isinstance(request, str):
            self.message.set_text(request)
            return
        self.run = InstallRun(request, self.log_path)
        try:
            self.run.start()
        except (launcher.LaunchError, OSError) as exc:  # said, not raised
            self.message.set_text(str(exc))
            self.run = None
            return
        self.start_button.set_sensitive(False)
        self.message.set_text(f"Installing… (log: {self.log_path})")
        GLib.timeout_add(POLL_MS, self._poll)

    def _append(self, lines: list[str]) -> None:
        buffer = self.output.get_buffer()
        for line in lines:
            buffer.insert(buffer.get_end_iter(), line + "\n")

    def _poll(self) -> bool:
        run = self.run
        if run is None:
            return False
        self._append(run.poll())
        self.progress.set_fraction(run.progress)
        if not run.finished():
            return True
        self._append(run.poll())
        failure = run.failure()
        if failure:
            self.message.set_text(failure)
            self.start_button.set_sensitive(True)
        else:
            self.installed = True
            self.progress.set_fraction(1.0)
            self.message.set_text("The DNI backend is installed. The filters start it when "
                                  "needed.")
            self.close_button.set_label("_Close")
        return False


def run_install_dialog(offer: Offer, plugin_dir: str, log_dir: str) -> bool:
    """Show the offer and run the installer if the artist says so; True once installed."""
    dialog = InstallDialog(offer, plugin_dir, log_dir)
    Gtk.main()
    dialog.dialog.destroy()
    return dialog.installed


def offer_install(session: object, plugin_dir: str, log_dir: str) -> bool:
    """No backend could be reached: offer to install one. True once it is installed and
    the session points at it (the caller connects again)."""
    offer = install_offer.offer_for(session)
    if offer is None or offer.kind != install_offer.INSTALL:
        return False
    if not run_install_dialog(offer, plugin_dir, log_dir):
        return False
    install_offer.adopt_new_backend(session, plugin_dir)
    return True
