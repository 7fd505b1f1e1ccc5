"""Runs INSIDE Krita as the small test plugin `dni_e2e` (copied by test_krita_e2e.py).

After Krita's window appears it drives the installed DNI plugin through
`dni_krita.run_filter` and the dialog, measures the pixels of the new layers (pure Python:
Krita's interpreter has no numpy), writes everything to $DNI_E2E_OUT/results.json, saves a
screenshot of the dialog, and quits through the file_quit action. The pytest side asserts.
"""

from __future__ import annotations

import json
import math
import os
import random
import struct
import time
import traceback

from krita import Extension, Krita, Selection
from PyQt5.QtCore import QCoreApplication, QTimer

OUT = os.environ.get("DNI_E2E_OUT", "/tmp/dni-e2e")
CONF = json.loads(os.environ.get("DNI_E2E_CONF", "{}"))
results: dict = {"checks": {}, "log": [], "started": time.time()}


def save() -> None:
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


def log(message: str) -> None:
    results["log"].append(f"{time.time() - results['started']:.1f}s {message}")
    save()


def check(name: str, ok: bool, **detail) -> None:
    results["checks"][name] = {"ok": bool(ok), **detail}
    log(f"{name}: {'ok' if ok else 'FAIL'} {detail}")


def pump(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.01)


# -- pixel helpers (Krita U8 = B, G, R, A) -------------------------------------------------

def noisy_fill(width: int, height: int, sigma: float = 25.0, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    out = bytearray(width * height * 4)
    for i in range(width * height):
        base = 100 + 60 * ((i % width) * 2 // width)  # two flat halves: 100 and 160
        for c in range(3):
            out[i * 4 + c] = max(0, min(255, int(round(base + rng.gauss(0, sigma)))))
        out[i * 4 + 3] = 255
    return bytes(out)


def channel(data: bytes, width: int, rect: tuple, offset: int = 1, bpp: int = 4) -> list:
    x0, y0, w, h = rect
    return [data[((y0 + y) * width + x0 + x) * bpp + offset] for y in range(h) for x in range(w)]


def local_noise(data: bytes, width: int, rect: tuple) -> float:
    """RMS of the difference between horizontal neighbours (flat areas: noise only)."""
    x0, y0, w, h = rect
    diffs = []
    for y in range(y0, y0 + h):
        for x in range(x0, x0 + w - 1):
            i = (y * width + x) * 4 + 1
            diffs.append(data[i + 4] - data[i])
    return math.sqrt(sum(d * d for d in diffs) / len(diffs))


def new_doc(width: int, height: int, name: str, depth: str = "U8") -> tuple:
    app = Krita.instance()
    doc = app.createDocument(width, height, name, "RGBA", depth, "", 72.0)
    app.activeWindow().addView(doc)
    layer = doc.createNode("source", "paintlayer")
    doc.rootNode().addChildNode(layer, None)
    doc.setActiveNode(layer)
    return doc, layer


# -- the checks ----------------------------------------------------------------------------

def run_checks() -> None:
    import dni_krita

    from dni_client.filters import FILTERS

    app = Krita.instance()
    conn = dni_krita.session()
    check("plugin_loaded", True, endpoint=conn.settings.endpoint)
    qwin = app.activeWindow().qwindow()
    entries = []
    bar = [a.objectName() for a in qwin.menuBar().actions()]
    subs = []
    for action in qwin.menuBar().actions():
        if action.objectName().lower() == "filter" and action.menu() is not None:
            subs = [(a.objectName(), a.text()) for a in action.menu().actions()]
            for sub in action.menu().actions():
                if sub.objectName() == "dni" and sub.menu() is not None:
                    entries = [a.text() for a in sub.menu().actions() if a.text()]
    # One entry per declared filter (the catch-all "Other Family…" lists the rest).
    check("filter_menu_has_dni_entries", {f"{f.title}…" for f in FILTERS} <= set(entries),
          entries=entries, bar=bar, filter_menu=subs[:40])
    from PyQt5.QtWidgets import QDockWidget

    dockers = [d.windowTitle() for d in qwin.findChildren(QDockWidget)]
    check("dni_docker_registered", "DNI" in dockers)
    t0 = time.monotonic()
    conn.wait_connected(timeout=120, pump=lambda: QCoreApplication.processEvents())
    check("backend_started_by_plugin", conn.backend is not None,
          seconds=round(time.monotonic() - t0, 1), message=conn.message,
          families=[f.name for f in conn.families])

    if CONF.get("only"):  # a developer's shortcut: DNI_E2E_ONLY=view,layers
        for part in CONF["only"]:
            {"view": view_checks, "layers": lambda k: layer_and_backend_checks(k, conn),
             "bench": preview_benchmark}[part](dni_krita)
        return
    denoise = CONF["denoise"]
    size = 96
    doc, layer = new_doc(size, size, "noisy")
    noisy = noisy_fill(size, size)
    layer.setPixelData(noisy, 0, 0, size, size)
    doc.refreshProjection()
    inner = (8, 8, size - 16, size - 16)

    # 1. Whole layer, strongest denoise.
    t0 = time.monotonic()
    new = dni_krita.run_filter(denoise, strength=1.0, layer=layer)
    seconds = time.monotonic() - t0
    out = bytes(new.pixelData(0, 0, size, size))
    before, after = local_noise(noisy, size, inner), local_noise(out, size, inner)
    check("denoise_lowers_noise", after < 0.8 * before, noise_before=round(before, 2),
          noise_after=round(after, 2), seconds=round(seconds, 2), layer=new.name())
    check("source_unchanged", bytes(layer.pixelData(0, 0, size, size)) == noisy)
    siblings = [n.name() for n in layer.parentNode().childNodes()]
    check("new_layer_above_source", siblings.index(new.name()) == siblings.index("source") + 1,
          stack=siblings)

    # 2. Inside a selection only.
    sel = Selection()
    sel.select(32, 32, 32, 32, 255)
    doc.setSelection(sel)
    new2 = dni_krita.run_filter(denoise, strength=1.0, layer=layer)
    out2 = bytes(new2.pixelData(0, 0, size, size))
    alpha_out = channel(out2, size, (0, 0, 24, 24), offset=3)
    alpha_in = channel(out2, size, (34, 34, 28, 28), offset=3)
    noise_in = local_noise(out2, size, (34, 34, 28, 28))
    check("selection_limits_result", max(alpha_out) == 0 and min(alpha_in) == 255
          and noise_in < 0.8 * local_noise(noisy, size, (34, 34, 28, 28)),
          alpha_outside_max=max(alpha_out), alpha_inside_min=min(alpha_in),
          noise_inside=round(noise_in, 2))
    doc.setSelection(None)
    check("source_unchanged_after_selection", bytes(layer.pixelData(0, 0, size, size)) == noisy)

    # 3. A strength map: black left half (weakest), white right half (strongest).
    mapnode = doc.createNode("map", "paintlayer")
    doc.rootNode().addChildNode(mapnode, None)
    grey = bytearray(size * size * 4)
    for i in range(size * size):
        v = 255 if (i % size) >= size // 2 else 0
        grey[i * 4:i * 4 + 4] = bytes((v, v, v, 255))
    mapnode.setPixelData(bytes(grey), 0, 0, size, size)
    new3 = dni_krita.run_filter(denoise, layer=layer, strength_map=mapnode)
    out3 = bytes(new3.pixelData(0, 0, size, size))
    left = local_noise(out3, size, (8, 8, size // 2 - 20, size - 16))
    right = local_noise(out3, size, (size // 2 + 12, 8, size // 2 - 20, size - 16))
    check("strength_map_varies_strength", right < 0.9 * left, noise_left_weak=round(left, 2),
          noise_right_strong=round(right, 2))

    # 4. All RGBA depths through the identity family: the result equals the source.
    for depth in ("U8", "U16", "F16", "F32"):
        d, src = new_doc(24, 16, f"depth-{depth}", depth)
        bpp = {"U8": 4, "U16": 8, "F16": 8, "F32": 16}[depth]
        rng = random.Random(7)
        if depth == "U8":
            data = bytes(rng.randrange(256) for _ in range(24 * 16 * bpp))
        elif depth == "U16":
            data = struct.pack(f"<{24 * 16 * 4}H",
                               *(rng.randrange(65536) for _ in range(24 * 16 * 4)))
        else:
            code = "e" if depth == "F16" else "f"
            data = struct.pack(f"<{24 * 16 * 4}{code}",
                               *(rng.randrange(1024) / 1024 for _ in range(24 * 16 * 4)))
        # Opaque alpha, so that nothing depends on how Krita stores transparent pixels.
        data = bytearray(data)
        opaque = {"U8": b"\xff", "U16": b"\xff\xff", "F16": struct.pack("<e", 1.0),
                  "F32": struct.pack("<f", 1.0)}[depth]
        a = len(opaque)
        for i in range(24 * 16):
            data[i * bpp + bpp - a:i * bpp + bpp] = opaque
        src.setPixelData(bytes(data), 0, 0, 24, 16)
        got_src = bytes(src.pixelData(0, 0, 24, 16))
        res = dni_krita.run_filter("identity", strength=0.5, layer=src, document=d)
        got = bytes(res.pixelData(0, 0, 24, 16))
        check(f"depth_{depth}_identity_exact", got == got_src and res.colorDepth() == depth,
              bytes=len(got), depth=res.colorDepth())
        d.setModified(False)
        d.close()

    # 5. Super-resolution: 4x larger image, and into a new document.
    sr = CONF["super_resolve"]
    d, src = new_doc(32, 24, "small")
    small = noisy_fill(32, 24, sigma=5.0)
    src.setPixelData(small, 0, 0, 32, 24)
    t0 = time.monotonic()
    big = dni_krita.run_filter(sr, strength=0.5, layer=src, document=d, sr_output="new_document")
    seconds = time.monotonic() - t0
    new_doc_ = app.documents()[-1]
    check("super_resolve_new_document_4x", (new_doc_.width(), new_doc_.height()) == (128, 96)
          and bytes(src.pixelData(0, 0, 32, 24)) == small and (d.width(), d.height()) == (32, 24),
          size=[new_doc_.width(), new_doc_.height()], seconds=round(seconds, 2),
          layer=big.name())
    d2, src2 = new_doc(32, 24, "small-enlarged")  # its view is the active one now
    src2.setPixelData(small, 0, 0, 32, 24)
    pump(0.3)
    canvas = app.activeWindow().activeView().canvas()
    zoom = canvas.zoomLevel()
    dni_krita.run_filter(sr, strength=0.5, layer=src2, document=d2, sr_output="resize")
    pump(0.3)
    # The view zooms out by the same factor: the picture keeps its size on screen.
    check("super_resolve_resize_4x", (d2.width(), d2.height()) == (128, 96)
          and abs(canvas.zoomLevel() - zoom / 4) < 1e-3 * zoom,
          size=[d2.width(), d2.height()], zoom_before=zoom, zoom_after=canvas.zoomLevel())
    # Enlarging and the new layer are one undo step: one Ctrl+Z gives the small image back.
    app.action("edit_undo").trigger()
    d2.waitForDone()
    pump(0.5)
    d2.waitForDone()
    check("super_resolve_resize_is_one_undo_step", (d2.width(), d2.height()) == (32, 24)
          and [n.name() for n in d2.rootNode().childNodes()][-1] == "source",
          size=[d2.width(), d2.height()], layers=[n.name() for n in d2.rootNode().childNodes()])
    for x in (new_doc_, d, d2):
        x.setModified(False)
        x.close()

    # 6. Bad input: a group layer, CMYK.
    group = doc.createGroupLayer("group")
    doc.rootNode().addChildNode(group, None)
    try:
        dni_krita.run_filter(denoise, layer=group, document=doc)
        check("group_layer_refused", False)
    except dni_krita.FilterError as exc:
        check("group_layer_refused", "group" in str(exc), message=str(exc))

    # 7. The dialog: live preview follows the slider.
    log("opening the photo")
    photo = app.openDocument(CONF["photo"])
    app.activeWindow().addView(photo)
    app.setActiveDocument(photo)
    photo_layer = [n for n in photo.rootNode().childNodes() if n.type() == "paintlayer"][-1]
    photo.setActiveNode(photo_layer)
    pump(0.5)
    dialog = dni_krita.open_dialog(family=denoise, document=photo, layer=photo_layer)
    deadline = time.monotonic() + 60
    while dialog.previews_shown < 1 and time.monotonic() < deadline:
        pump(0.05)
    log(f"first preview: {dialog.previews_shown}")
    first = dialog.preview.grab().toImage()
    shown = dialog.previews_shown
    dialog.set_strength(0.0)
    deadline = time.monotonic() + 60
    while (dialog.previews_shown <= shown or dialog.preview_strength != 0.0) \
            and time.monotonic() < deadline:
        pump(0.05)
    second = dialog.preview.grab().toImage()
    check("dialog_preview_follows_slider", dialog.previews_shown > shown
          and dialog.preview_strength == 0.0 and first != second,
          previews=dialog.previews_shown, spin=dialog.spin.value(),
          preview_strength=dialog.preview_strength)
    dialog.set_strength(0.6)
    deadline = time.monotonic() + 60
    while dialog.preview_strength != 0.6 and time.monotonic() < deadline:
        pump(0.05)
    pump(0.3)
    shot = os.path.join(OUT, "krita-dialog.png")
    check("dialog_screenshot", dialog.grab().save(shot, "PNG"), path=shot)
    # The N-way mixer: moving one member keeps the weights convex, and previews follow.
    shown = dialog.previews_shown
    dialog.mixer_box.setChecked(True)
    dialog.mixer_sliders[0].setValue(500)  # member 0 to 50 %
    deadline = time.monotonic() + 60
    while dialog.previews_shown <= shown and time.monotonic() < deadline:
        pump(0.05)
    pump(0.5)
    w = dialog.weights
    check("dialog_mixer_keeps_weights_convex", abs(sum(w) - 1) < 1e-9 and min(w) >= 0
          and abs(w[0] - 0.5) < 1e-9 and dialog.previews_shown > shown
          and dialog.options().amount.weights == tuple(w), weights=[round(x, 3) for x in w])
    # Apply from the dialog: the job runs asynchronously, delivered by the plugin's QTimer.
    layers_before = len(photo.rootNode().childNodes())
    dialog.apply()
    deadline = time.monotonic() + 60
    while dialog.result_layer is None and time.monotonic() < deadline:
        pump(0.05)
    applied = dialog.result_layer
    check("dialog_apply_adds_a_layer", applied is not None
          and len(photo.rootNode().childNodes()) == layers_before + 1
          and applied.name().endswith("/".join(str(int(round(x * 100))) for x in w)),
          layer=applied.name() if applied else None)
    dialog.reject()
    # Filter ▸ DNI ▸ Other Family… offers every installed family, whatever its task.
    other = dni_krita.open_dialog(task="other", document=photo, layer=photo_layer)
    deadline = time.monotonic() + 30
    while not other.families and time.monotonic() < deadline:
        pump(0.05)
    check("filter_menu_lists_other_families", {f.name for f in other.families}
          == {f.name for f in conn.families} and other.family_box.count() == len(conn.families),
          offered=[f.name for f in other.families])
    other.reject()

    # The docker re-runs the last filter with its own slider and replaces that result.
    from dni_krita.plugin import instance

    docker = [d for d in qwin.findChildren(QDockWidget) if d.windowTitle() == "DNI"][0]
    docker.refresh()
    docker.slider.setValue(200)
    docker.rerun()
    deadline = time.monotonic() + 60
    while (conn.current is not None or instance().last_run.layer is None) \
            and time.monotonic() < deadline:
        pump(0.05)
    names = [n.name() for n in photo.rootNode().childNodes()]
    title = conn.family(denoise).title
    check("docker_rerun_replaces_last_result", f"DNI {title} 20%" in names
          and (applied is None or applied.name() not in names), layers=names,
          status=docker.status.text())
    photo.setModified(False)

    pump(0.5)
    log("dialog done")
    view_checks(dni_krita)
    log("view checks done")
    if "replace" in CONF.get("skip", []):
        return
    # 8. "Replace" is undoable in one step: a new layer and the removal of the old are
    #    commands in Krita's history, joined by undo_groups.
    from dni_krita import canvas_view

    d, src = new_doc(48, 48, "replace")
    data = noisy_fill(48, 48)
    src.setPixelData(data, 0, 0, 48, 48)
    res = dni_krita.run_filter(denoise, strength=1.0, layer=src, document=d, target="replace")
    names = [n.name() for n in d.rootNode().childNodes()]
    replaced = "source" not in names and res.name() in names
    if "undo" not in CONF.get("skip", []):
        pump(0.3)  # as an artist would: the history list settles first
        app.action("edit_undo").trigger()
        pump(0.3)
        d.waitForDone()
        pump(0.3)
    back = d.nodeByName("source")
    if back is not None:
        d.setActiveNode(back)  # the undone layer was active; Krita 5.1.5 can crash on close
        pump(0.2)
    names_after = [n.name() for n in d.rootNode().childNodes()]
    check("replace_is_one_undo_step", replaced and back is not None
          and bytes(back.pixelData(0, 0, 48, 48)) == data and res.name() not in names_after,
          after_apply=names, after_one_undo=names_after,
          history=canvas_view.undo_names(d))
    d.setModified(False)
    pump(0.5)
    log("replace done")

    if "kill" in CONF.get("skip", []):
        return
    # 9. The backend dies mid-job: an error, the document untouched; the next call
    #    starts a new backend.
    d, src = new_doc(1024, 1024, "big")
    src.setPixelData(noisy_fill(1024, 1024, sigma=10.0), 0, 0, 1024, 1024)
    before_names = [n.name() for n in d.rootNode().childNodes()]
    done = []
    from dni_krita.core import Options
    from dni_krita.plugin import instance

    # Cancel first: the job ends with "Cancelled" and nothing changes.
    cancelled = []
    running = instance().start_job(d, src, conn.family("tiny3"), Options(),
                                   lambda layer, error: cancelled.append(error))
    conn.cancel(running)
    deadline = time.monotonic() + 30
    while not cancelled and time.monotonic() < deadline:
        pump(0.05)
    check("cancel_leaves_document_unchanged", bool(cancelled) and cancelled[0] is not None
          and "Cancelled" in cancelled[0]
          and [n.name() for n in d.rootNode().childNodes()] == before_names,
          message=cancelled[0] if cancelled else None)
    instance().start_job(d, src, conn.family("tiny3"), Options(),
                         lambda layer, error: done.append(error))
    old_pid = conn.backend.process.pid
    conn.backend.process.kill()
    deadline = time.monotonic() + 30
    while not done and time.monotonic() < deadline:
        pump(0.05)
    after_names = [n.name() for n in d.rootNode().childNodes()]
    check("backend_gone_mid_job_reported", bool(done) and done[0] is not None
          and "not changed" in done[0] and "stopped" in done[0]
          and after_names == before_names,
          message=done[0] if done else None, layers=after_names)
    new = dni_krita.run_filter("identity", strength=0.0, layer=src, document=d)
    check("backend_restarted_after_death", conn.backend is not None
          and conn.backend.process.pid != old_pid and new is not None,
          message=conn.message)
    d.setModified(False)
    pump(0.5)
    log("kill done")
    layer_and_backend_checks(dni_krita, conn)


# -- the preview where the artist looks ------------------------------------------------------

def _red_centre(widget) -> tuple:
    """Where a pure red patch shows in a widget's rendering (screen pixels)."""
    img = widget.grab().toImage()
    reds = [(x, y) for y in range(0, img.height(), 2) for x in range(0, img.width(), 2)
            if img.pixelColor(x, y).red() > 200 and img.pixelColor(x, y).green() < 60]
    if not reds:
        return None
    return (sum(p[0] for p in reds) / len(reds), sum(p[1] for p in reds) / len(reds))


def _preview_of_zoomed_second_document(dni_krita) -> None:
    """Two documents open, the second zoomed to 200 % and scrolled to a red mark: the
    preview is centred on what that view shows (before: the first canvas found)."""
    from dni_krita import canvas_view

    app = Krita.instance()
    first, _ = new_doc(2000, 1000, "first")
    second, _ = new_doc(1600, 1200, "second")
    # The dialog filters the active layer; Document.setActiveNode() does nothing in Krita
    # 5.1.5 under Xvfb (no window manager), so the picture goes into Background, which is.
    layer = second.rootNode().childNodes()[0]
    layer.setPixelData(noisy_fill(1600, 1200, sigma=3.0), 0, 0, 1600, 1200)
    layer.setPixelData(bytes([0, 0, 255, 255]) * 1600, 1200, 900, 40, 40)  # red, BGRA
    second.refreshProjection()
    second.waitForDone()
    app.activeWindow().activeView().canvas().setZoomLevel(2.0)
    pump(0.5)
    window = app.activeWindow()
    controller = canvas_view._canvas_controller(window)
    h, v = controller.horizontalScrollBar(), controller.verticalScrollBar()
    per_pixel = (h.maximum() + h.minimum() + h.pageStep()) / 1600
    h.setValue(int(1220 * per_pixel - h.pageStep() / 2))
    v.setValue(int(920 * per_pixel - v.pageStep() / 2))
    pump(0.5)
    seen = canvas_view.visible_rect(second)
    red = _red_centre(controller.viewport())
    vp = controller.viewport()
    # Krita's own rendering, mapped through the visible area: the mark's image position.
    mapped = None if red is None or seen is None else (
        seen.x + red[0] * seen.width / vp.width(), seen.y + red[1] * seen.height / vp.height())
    dialog = dni_krita.open_dialog(family=CONF["denoise"], document=second, layer=layer)
    log(f"dialog on layer {dialog.node.name()}")
    crop = dialog.crop
    centre = (crop.x + crop.width / 2, crop.y + crop.height / 2) if crop else None
    check("preview_follows_active_view_of_zoomed_second_document",
          mapped is not None and abs(mapped[0] - 1220) < 4 and abs(mapped[1] - 920) < 4
          and centre is not None and abs(centre[0] - 1220) < 8 and abs(centre[1] - 920) < 8,
          visible=list(seen) if seen else None, mark_on_screen=red, mark_mapped=mapped,
          preview_crop=list(crop) if crop else None)
    _canvas_preview_leaves_no_trace(dialog, second)
    dialog.reject()
    pump(0.3)
    for d in (first, second):
        d.setModified(False)


def _canvas_preview_leaves_no_trace(dialog, doc) -> None:
    from dni_krita import canvas_view

    names = [n.name() for n in doc.rootNode().childNodes()]
    history = canvas_view.undo_position(doc)
    dialog.on_canvas.setChecked(True)
    deadline = time.monotonic() + 60
    while (dialog.canvas_preview is None or dialog.canvas_preview.updates < 1) \
            and time.monotonic() < deadline:
        pump(0.05)
    preview = dialog.canvas_preview.layer if dialog.canvas_preview else None
    shown = dialog.canvas_preview.shown if dialog.canvas_preview else None
    during = [n.name() for n in doc.rootNode().childNodes()]
    locked = preview is not None and preview.locked()
    mark = dialog.canvas_preview._history_mark if dialog.canvas_preview else None
    dialog.on_canvas.setChecked(False)
    pump(0.5)
    after = [n.name() for n in doc.rootNode().childNodes()]
    log(f"canvas preview: mark {mark}, at close {canvas_view.undo_position(doc)}")
    # The history is where it was (its current step); the undone "Add Layer" stays only
    # as a redo step, which the next action drops.
    now = canvas_view.undo_position(doc)
    check("canvas_preview_on_off_leaves_no_layer",
          sorted(during) == sorted(names + ["DNI preview"])
          and during.index("DNI preview") == during.index(dialog.node.name()) + 1
          and locked and after == names
          and history is not None and now is not None and now[1] == history[1],
          before=names, during=during, after=after, area=list(shown) if shown else None,
          history_before=history, history_after=canvas_view.undo_position(doc))


def _depth_fill(depth: str, width: int, height: int) -> bytes:
    pattern = noisy_fill(64, 1, sigma=20.0)  # 64 BGRA pixels, repeated
    if depth == "U8":
        row = pattern * (width // 64)
    elif depth == "U16":
        row = b"".join(bytes([0, b]) for b in pattern) * (width // 64)
    else:
        rgba = [pattern[i + o] / 255 for i in range(0, len(pattern), 4) for o in (2, 1, 0, 3)]
        row = struct.pack(f"<{len(rgba)}{'e' if depth == 'F16' else 'f'}", *rgba) \
            * (width // 64)
    return row * height


def _longest_stall_while(condition, seconds: float) -> float:
    """Run the event loop until `condition()`; the longest gap between two ticks of a
    2 ms timer, in ms: how long Krita's GUI thread was stuck at a time."""
    from PyQt5.QtCore import QTimer

    ticks = []
    timer = QTimer()
    timer.setInterval(2)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        QCoreApplication.processEvents()
        time.sleep(0.001)
    timer.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    return round(max(gaps) * 1000, 1) if gaps else -1.0


class _Slowest:
    """Wraps the plugin's GUI-thread handlers and keeps the longest call of each (ms).
    Classes are patched before the dialog exists, so that the handlers its timers and
    signals were connected to are the wrapped ones."""

    def __init__(self, owners: list) -> None:
        self.longest: dict = {}
        self._originals = [(owner, name, owner.__dict__.get(name)) for owner, name in owners]
        for owner, name in owners:
            setattr(owner, name, self._timed(name, getattr(owner, name)))

    def _timed(self, name: str, function):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                ms = (time.perf_counter() - t0) * 1000
                self.longest[name] = round(max(self.longest.get(name, 0.0), ms), 1)
        return timed

    def restore(self) -> None:
        for owner, name, original in self._originals:
            if original is None:
                delattr(owner, name)  # an instance attribute over the class's method
            else:
                setattr(owner, name, original)


def _preview_freeze_per_depth(dni_krita) -> None:
    """A 512² preview at every depth: the slider moves, the preview arrives, and Krita's
    GUI thread is never stuck for long (a float crop froze it 0.25-0.34 s before). Two
    numbers: the longest call of the plugin's own GUI-thread handlers (what the plugin
    costs) and the longest gap of a 2 ms timer (anything, the machine's load included)."""
    session = dni_krita.session()
    stalls = {}
    for depth in ("U8", "U16", "F16", "F32"):
        doc, _ = new_doc(1024, 1024, f"freeze-{depth}", depth)
        layer = doc.rootNode().childNodes()[0]  # Background: the active layer
        layer.setPixelData(_depth_fill(depth, 1024, 1024), 0, 0, 1024, 1024)
        doc.refreshProjection()
        doc.waitForDone()
        pump(0.3)
        from dni_krita.preview import PreviewScheduler
        from dni_krita.preview_image import Converter
        from dni_krita.preview_view import PreviewView

        slowest = _Slowest([(session, "tick"), (PreviewScheduler, "run"),
                            (PreviewScheduler, "_event"), (Converter, "_step"),
                            (PreviewView, "paintEvent")])
        dialog = dni_krita.open_dialog(family=CONF["denoise"], document=doc, layer=layer)
        dialog.area = None
        dialog.preview.setFixedSize(512, 512)
        dialog._read_preview_source()
        deadline = time.monotonic() + 60
        while dialog.previews_shown < 1 and time.monotonic() < deadline:
            pump(0.05)
        slowest.longest.clear()  # opening the dialog is not the slider's business
        gaps = []
        for strength in (0.1, 0.9, 0.4):
            shown = dialog.previews_shown
            dialog.set_strength(strength)
            gaps.append(_longest_stall_while(
                lambda s=shown, d=dialog: d.previews_shown > s, 60))
        stalls[depth] = {"crop": list(dialog.crop), "handlers_ms": slowest.longest,
                         "longest_timer_gap_ms": max(gaps)}
        slowest.restore()
        dialog.reject()
        doc.setModified(False)
        doc.close()
        pump(0.2)
    results["preview_stalls"] = stalls
    check("preview_every_depth_without_long_freeze",
          all(max(v["handlers_ms"].values()) < 50 for v in stalls.values()), **stalls)


def _percentile(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _psnr_8bit(a, b) -> float:
    """PSNR (dB) between two same-sized 8-bit QImages, colour channels only."""
    from PyQt5.QtGui import QImage

    def raw(image):
        image = image.convertToFormat(QImage.Format_ARGB32)
        bits = image.constBits()
        bits.setsize(image.sizeInBytes())
        return bytes(bits)

    x, y = raw(a), raw(b)
    if len(x) != len(y):
        return 0.0
    # Every 4th byte is alpha (opaque here): compare B, G, R.
    err = sum((p - q) * (p - q) for i, (p, q) in enumerate(zip(x, y, strict=True)) if i % 4 != 3)
    mse = err / (len(x) * 3 / 4)
    return 99.0 if mse == 0 else 10 * math.log10(255 * 255 / mse)


def preview_benchmark(dni_krita) -> None:
    """Slider to preview inside Krita, 512² crops at every depth. The dialog first renders
    the crop at the cache's grid of strengths (the artist looking at the first preview);
    then each slider move measures the time to the first picture (a blend of the two
    cached neighbours, or a cached picture) and to the exact preview, and how far the
    first picture was from the exact one (PSNR). Beside it, in the same run, the same crop
    as a blocking job through the same session: the backend's own round trip, so the
    ratio is what the plugin adds to the exact preview."""
    from dni_krita.preview import PreviewScheduler
    from dni_krita.preview_image import Converter
    from dni_krita.preview_view import PreviewView

    session = dni_krita.session()
    moves = int(CONF.get("bench_moves", 12))
    table = {}
    for depth in ("U8", "U16", "F16", "F32"):
        doc, _ = new_doc(1024, 1024, f"bench-{depth}", depth)
        layer = doc.rootNode().childNodes()[0]
        layer.setPixelData(_depth_fill(depth, 1024, 1024), 0, 0, 1024, 1024)
        doc.refreshProjection()
        doc.waitForDone()
        pump(0.3)
        dialog = dni_krita.open_dialog(family=CONF["denoise"], document=doc, layer=layer)
        dialog.area = None
        dialog.preview.setFixedSize(512, 512)
        t0 = time.perf_counter()
        dialog._read_preview_source()
        _wait(lambda d=dialog: d.previews_shown >= 1, 60)
        _wait(lambda d=dialog: d.cache.missing(0.5) is None and not d.converter.busy(), 120)
        fill_s = time.perf_counter() - t0
        slowest = _Slowest([(session, "tick"), (PreviewScheduler, "run"),
                            (PreviewScheduler, "_event"), (Converter, "_step"),
                            (PreviewView, "paintEvent"), (type(dialog), "_strength_moved")])
        first, exact, round_trips, psnrs = [], [], [], []
        for i in range(moves):
            strength = round(0.05 + 0.9 * ((i * 7) % moves) / moves, 3)
            shown, stand_ins = dialog.previews_shown, dialog.stand_ins_shown
            t0 = time.perf_counter()
            dialog.set_strength(strength)
            _wait(lambda s=shown, n=stand_ins, d=dialog:
                  d.previews_shown > s or d.stand_ins_shown > n, 60)
            first.append((time.perf_counter() - t0) * 1000)
            stand_in = dialog._filtered if dialog.stand_ins_shown > stand_ins else None
            _wait(lambda s=strength, d=dialog: d.preview_strength == s, 60)
            exact.append((time.perf_counter() - t0) * 1000)
            if stand_in is not None:
                psnrs.append(_psnr_8bit(stand_in, dialog._filtered))
            job = dialog._preview_job()
            t0 = time.perf_counter()
            session.run(job.spec, timeout=60, pump=QCoreApplication.processEvents)
            round_trips.append((time.perf_counter() - t0) * 1000)
        slowest.restore()
        table[depth] = {
            "crop": list(dialog.crop), "moves": moves, "grid_fill_s": round(fill_s, 1),
            "first_picture_p50_ms": round(_percentile(first, 0.5), 1),
            "first_picture_p95_ms": round(_percentile(first, 0.95), 1),
            "exact_preview_p50_ms": round(_percentile(exact, 0.5), 1),
            "exact_preview_p95_ms": round(_percentile(exact, 0.95), 1),
            "stand_ins": len(psnrs),
            "stand_in_psnr_min_db": round(min(psnrs), 1) if psnrs else None,
            "stand_in_psnr_median_db": round(_percentile(psnrs, 0.5), 1) if psnrs else None,
            "backend_round_trip_p50_ms": round(_percentile(round_trips, 0.5), 1),
            "longest_handler_ms": max(slowest.longest.values() or [0.0]),
            "handlers_ms": slowest.longest}
        dialog.reject()
        doc.setModified(False)
        doc.close()
        pump(0.2)
    results["preview_benchmark"] = table
    check("preview_benchmark_ran", all(v["moves"] == moves for v in table.values()), **table)


def view_checks(dni_krita) -> None:
    _preview_of_zoomed_second_document(dni_krita)
    _preview_freeze_per_depth(dni_krita)


# -- DNI layers, the docker, and the backend going away ------------------------------------

def _wait(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        pump(0.05)
    return bool(condition())


def _docker():
    from PyQt5.QtWidgets import QDockWidget

    qwin = Krita.instance().activeWindow().qwindow()
    return [d for d in qwin.findChildren(QDockWidget) if d.windowTitle() == "DNI"][0]


def _reedit_a_dni_layer(dni_krita) -> None:
    """Select a DNI layer, move the docker's slider: it is made again in its place from
    its source with the new strength; one undo brings the old one back, one redo the new."""
    from dni_krita import canvas_view
    from dni_krita.plugin import instance

    denoise = CONF["denoise"]
    doc, src = new_doc(64, 64, "reedit")
    src.setPixelData(noisy_fill(64, 64), 0, 0, 64, 64)
    pump(0.3)
    first = dni_krita.run_filter(denoise, strength=0.2, layer=src, document=doc)
    first_pixels = bytes(first.pixelData(0, 0, 64, 64))
    reference = dni_krita.run_filter(denoise, strength=0.9, layer=src, document=doc)
    wanted = bytes(reference.pixelData(0, 0, 64, 64))
    reference.remove()
    docker = _docker()
    docker.show_selected(doc, first)  # what its watcher does when the artist clicks it
    found = docker.selected is not None and docker.selected[1].name() == first.name()
    made = instance().last_run.layer if instance().last_run else None
    docker.slider.setValue(900)  # as a drag to 90 %, then the release
    docker.slider.sliderReleased.emit()
    _wait(lambda: instance().last_run is not None and instance().last_run.layer is not made
          and instance().session.current is None)
    names = [n.name() for n in doc.rootNode().childNodes()]
    new = doc.nodeByName(f"DNI {instance().session.family(denoise).title} 90%")
    same = new is not None and bytes(new.pixelData(0, 0, 64, 64)) == wanted
    new_name = new.name() if new is not None else "?"
    history = canvas_view.undo_names(doc)
    pump(0.3)  # an artist looks before pressing Ctrl+Z; the history list settles
    Krita.instance().action("edit_undo").trigger()  # once: the commands are one step
    doc.waitForDone()
    pump(0.5)
    back = doc.nodeByName(first.name())
    restored = back is not None and bytes(back.pixelData(0, 0, 64, 64)) == first_pixels \
        and doc.nodeByName(new_name) is None
    Krita.instance().action("edit_redo").trigger()  # and once forward again
    doc.waitForDone()
    pump(0.5)
    redone = doc.nodeByName(first.name()) is None and doc.nodeByName(new_name) is not None
    check("reedit_dni_layer_in_place_one_undo_step",
          found and same and names.index(new.name()) == 2 and restored and redone,
          layers=names, restored_by_one_undo=restored, redone_by_one_redo=redone,
          history=history, docker=docker.last_label.text(),
          grouping=repr(getattr(instance().undo, "_groups", instance().undo)),
          grouping_steps=getattr(instance().undo, "steps_taken", None))
    doc.setModified(False)


def _docker_rerun_keeps_a_mix(dni_krita) -> None:
    from dni_krita.plugin import instance

    doc, src = new_doc(32, 32, "mix")
    src.setPixelData(noisy_fill(32, 32), 0, 0, 32, 32)
    mixed = dni_krita.run_filter("tiny3", weights=[0.2, 0.3, 0.5], layer=src, document=doc)
    pixels = bytes(mixed.pixelData(0, 0, 32, 32))
    docker = _docker()
    docker.show_selected(doc, mixed)
    docker.rerun()
    _wait(lambda: instance().last_run.layer is not mixed and instance().session.current is None)
    again = instance().last_run.layer
    check("docker_rerun_keeps_n_way_mix", again is not None and again is not mixed
          and again.name() == "DNI Tiny3 20/30/50"
          and bytes(again.pixelData(0, 0, 32, 32)) == pixels,
          layers=[n.name() for n in doc.rootNode().childNodes()])
    doc.setModified(False)


def _apply_right_after_a_crash(dni_krita, conn) -> None:
    """The backend dies; the artist presses Apply at once: it waits for the new backend
    and applies (before: only "Starting the DNI backend…", nothing happened)."""
    doc, _ = new_doc(48, 48, "crash")
    layer = doc.rootNode().childNodes()[0]
    layer.setPixelData(noisy_fill(48, 48), 0, 0, 48, 48)
    pump(0.3)
    conn.backend.process.kill()
    conn.backend.process.wait()
    log(f"crash: killed; {conn.state}: {conn.message}")
    dialog = dni_krita.open_dialog(family="tiny", document=doc, layer=layer)
    _wait(lambda: dialog.state is not None, 60)
    log(f"crash: dialog ready={dialog.state is not None}; {conn.state}: {conn.message}")
    dialog.apply()
    ok = _wait(lambda: dialog.result_layer is not None, 60)
    log(f"crash: applied={ok}; {conn.state}: {conn.message}; {dialog.status.text()}")
    check("apply_right_after_backend_crash", ok, status=dialog.status.text(),
          message=conn.message)
    if not ok:
        dialog.reject()
    doc.setModified(False)


def _port_change(conn) -> None:
    """DNI Settings: a new port. The plugin stops its backend on the old one and starts
    one on the new one; nothing answers on the old port any more."""
    import socket

    from dni_krita.settings_dialog import SettingsDialog

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    old = conn.settings.endpoint
    dialog = SettingsDialog()
    dialog.endpoint.setText(f"tcp://127.0.0.1:{port}")
    t0 = time.monotonic()
    dialog.store()
    conn.wait_connected(timeout=120, pump=lambda: QCoreApplication.processEvents())
    seconds = time.monotonic() - t0
    old_port = int(old.rsplit(":", 1)[1])

    def answers(p: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", p), timeout=0.3):
                return True
        except OSError:
            return False

    results["new_port"] = port
    check("port_change_restarts_backend", conn.connected and answers(port)
          and not answers(old_port) and conn.backend is not None,
          seconds=round(seconds, 1), old=old, new=conn.settings.endpoint)


def _get_more_families(dni_krita, conn) -> None:
    """Get more families…: the catalogue (served on loopback by the test) lists one
    family; Install downloads it through the backend, with progress; it can be used at
    once."""
    from dni_krita.get_families import GetFamiliesDialog

    dialog = GetFamiliesDialog.open_for(None)
    row = dialog.rows.get("general") if hasattr(dialog, "rows") else None
    if row is None:
        check("get_more_families_installs_one", False, rows=list(getattr(dialog, "rows", {})))
        dialog.reject()
        return
    before = row.status.text()
    row.button.click()
    _wait(lambda: dialog.model.item("general").state != "installing", 90)
    after = row.status.text()
    dialog.reject()
    doc, src = new_doc(16, 12, "get")
    src.setPixelData(noisy_fill(16, 12, sigma=5.0), 0, 0, 16, 12)
    made = None
    try:
        dni_krita.run_filter("general", strength=0.5, layer=src, document=doc)
        made = Krita.instance().documents()[-1]
    except dni_krita.FilterError as exc:
        log(f"get: {exc}")
    check("get_more_families_installs_one", "general" in {f.name for f in conn.families}
          and after.startswith("Installed") and made is not None
          and (made.width(), made.height()) == (64, 48),
          before=before, after=after, size=[made.width(), made.height()] if made else None)
    for d in (doc, made):
        if d is not None:
            d.setModified(False)


def layer_and_backend_checks(dni_krita, conn) -> None:
    _get_more_families(dni_krita, conn)
    _reedit_a_dni_layer(dni_krita)
    _docker_rerun_keeps_a_mix(dni_krita)
    _apply_right_after_a_crash(dni_krita, conn)
    _port_change(conn)


def finish() -> None:
    app = Krita.instance()
    for doc in app.documents():
        log(f"closing {doc.name()}")
        doc.setModified(False)
        if "noclose" not in CONF.get("skip", []):
            doc.close()
            pump(0.1)
        log("closed")
    results["finished"] = True
    save()
    app.action("file_quit").trigger()


_watchdog = []  # keeps the timer alive


def _close_unexpected_boxes() -> None:
    """No check expects a modal box: one would block Krita (and the test) until killed.
    Note its text, close it, and let the test fail on it."""
    from PyQt5.QtWidgets import QApplication, QMessageBox

    box = QApplication.activeModalWidget()
    if isinstance(box, QMessageBox):
        results.setdefault("unexpected_boxes", []).append(box.text())
        log(f"unexpected message box: {box.text()}")
        box.done(0)


def start() -> None:
    timer = QTimer()
    timer.timeout.connect(_close_unexpected_boxes)
    timer.start(1000)
    _watchdog.append(timer)
    try:
        run_checks()
    except Exception:
        results["error"] = traceback.format_exc()
        save()
    finally:
        QTimer.singleShot(100, finish)


class E2E(Extension):
    def setup(self) -> None:
        Krita.instance().notifier().windowCreated.connect(
            lambda: QTimer.singleShot(500, start))

    def createActions(self, window) -> None:
        pass


Krita.instance().addExtension(E2E(Krita.instance()))
