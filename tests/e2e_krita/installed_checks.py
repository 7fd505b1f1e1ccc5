"""Runs INSIDE Krita as the small test plugin `dni_e2e_installed` (copied by
test_krita_installed.py). CONF["mode"]:

- "dialog": the DNI plugin has no backend: it must offer an install; the test clicks
  Install in the plugin's install dialog (a local wheel and a loopback package index),
  waits for the installer, then the plugin starts that backend and denoises with it;
- "installed": installers/install.py put the plugin and the backend here: the plugin
  starts that backend and denoises with it.

Results go to $DNI_E2E_OUT/results.json; the pytest side asserts."""

from __future__ import annotations

import json
import os
import random
import time
import traceback

from krita import Extension, Krita
from PyQt5.QtCore import QCoreApplication, QTimer

OUT = os.environ.get("DNI_E2E_OUT", "/tmp/dni-e2e")
CONF = json.loads(os.environ.get("DNI_E2E_CONF", "{}"))
results: dict = {"checks": {}}


def save() -> None:
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


def check(name: str, ok: bool, **detail) -> None:
    results["checks"][name] = {"ok": bool(ok), **detail}
    save()


def pump_until(done, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not done() and time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.02)


def install_from_the_dialog(conn) -> None:
    from dni_krita.install_dialog import InstallDialog
    from dni_krita.settings import BACKEND_FILE, PLUGIN_DIR

    from dni_client import install_offer
    from dni_client.settings import read_json

    offer = install_offer.offer_for(conn)
    check("install_offered", offer is not None and offer.kind == install_offer.INSTALL,
          record=conn.settings.backend_record())
    installed = []

    def on_installed() -> None:  # the host's hook: read backend.json again, reconnect
        install_offer.adopt_new_backend(conn, PLUGIN_DIR)
        installed.append(True)

    window = Krita.instance().activeWindow().qwindow()
    dialog = InstallDialog(offer, conn.settings.config_dir, on_installed, window)
    dialog.wheel.setText(CONF["wheel"])
    dialog.index_url.setText(CONF["index_url"])
    dialog.show()
    t0 = time.monotonic()
    dialog.start_button.click()  # the artist's click: nothing ran before it
    pump_until(lambda: not dialog.timer.isActive(), 1200)
    lines = dialog.output.toPlainText().splitlines()
    check("installed_from_the_dialog", installed == [True] and dialog.progress.value() == 100,
          seconds=round(time.monotonic() - t0, 1), message=dialog.message.text(),
          steps=[line for line in lines if "] " in line and line.startswith("dni-install: [")],
          command=read_json(BACKEND_FILE).get("command"))
    dialog.close()


def connect_and_denoise(conn) -> None:
    t0 = time.monotonic()
    conn.wait_connected(timeout=150, pump=QCoreApplication.processEvents)
    check("installed_backend_started_by_plugin", conn.backend is not None and conn.connected,
          argv=list(conn.backend.argv) if conn.backend is not None else None,
          seconds=round(time.monotonic() - t0, 1), message=conn.message,
          version=conn.info.get("version"), families=[f.name for f in conn.families])
    import dni_krita

    app = Krita.instance()
    size = 64
    doc = app.createDocument(size, size, "noisy", "RGBA", "U8", "", 72.0)
    app.activeWindow().addView(doc)
    layer = doc.createNode("source", "paintlayer")
    doc.rootNode().addChildNode(layer, None)
    rng = random.Random(1)
    pixels = bytes(max(0, min(255, int(128 + rng.gauss(0, 25)))) if i % 4 != 3 else 255
                   for i in range(size * size * 4))
    layer.setPixelData(pixels, 0, 0, size, size)
    doc.refreshProjection()
    new = dni_krita.run_filter("denoise", strength=1.0, layer=layer)
    out = bytes(new.pixelData(0, 0, size, size))
    spread = max(out[1::4]) - min(out[1::4])
    check("bundled_denoise_ran", spread < max(pixels[1::4]) - min(pixels[1::4]),
          layer=new.name(), spread_after=spread)
    doc.setModified(False)
    doc.close()


def start() -> None:
    try:
        import dni_krita

        conn = dni_krita.session()
        check("plugin_loaded", True, installed=conn.settings.installed)
        if CONF.get("mode") == "dialog":
            install_from_the_dialog(conn)
        connect_and_denoise(conn)
    except Exception:
        results["error"] = traceback.format_exc()
    results["finished"] = True
    save()
    QTimer.singleShot(100, lambda: Krita.instance().action("file_quit").trigger())


class InstalledE2E(Extension):
    def setup(self) -> None:
        Krita.instance().notifier().windowCreated.connect(
            lambda: QTimer.singleShot(500, start))

    def createActions(self, window) -> None:
        pass


Krita.instance().addExtension(InstalledE2E(Krita.instance()))
