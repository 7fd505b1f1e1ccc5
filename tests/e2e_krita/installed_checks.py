"""Runs INSIDE Krita as the small test plugin `dni_e2e_installed` (copied by
test_krita_installed.py): the DNI plugin that installers/install.py put into this HOME
starts the backend install.py put into its own environment, connects, and denoises a
small noisy layer with the bundled family. Results go to $DNI_E2E_OUT/results.json."""

from __future__ import annotations

import json
import os
import random
import time
import traceback

from krita import Extension, Krita
from PyQt5.QtCore import QCoreApplication, QTimer

OUT = os.environ.get("DNI_E2E_OUT", "/tmp/dni-e2e")
results: dict = {"checks": {}}


def save() -> None:
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


def check(name: str, ok: bool, **detail) -> None:
    results["checks"][name] = {"ok": bool(ok), **detail}
    save()


def run_checks() -> None:
    import dni_krita

    conn = dni_krita.session()
    check("plugin_loaded", True, installed=conn.settings.installed)
    t0 = time.monotonic()
    conn.wait_connected(timeout=150, pump=QCoreApplication.processEvents)
    check("installed_backend_started_by_plugin", conn.backend is not None and conn.connected,
          argv=list(conn.backend.argv) if conn.backend is not None else None,
          seconds=round(time.monotonic() - t0, 1), message=conn.message,
          version=conn.info.get("version"), families=[f.name for f in conn.families])

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
        run_checks()
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
