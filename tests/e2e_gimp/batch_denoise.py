# Runs INSIDE GIMP 3 (python-fu-eval batch interpreter), not under pytest: GIMP's own
# Python, no numpy. Parameters come from the environment; results go to files in
# $DNI_E2E_DIR (input.raw in, after.raw + undone.raw + report.json out).
#
# DNI_E2E_DIALOG=xdotool (GUI GIMP under Xvfb only): run the filter interactively; its
# dialog opens, a screenshot is taken (dialog.xwd) and Alt+O presses its OK button.
# DNI_E2E_UNDO=xdotool (GUI GIMP under Xvfb only): after the filter, press Ctrl+Z in the
# image window with xdotool and wait for the pixels to come back: libgimp has no undo
# call, so that is the way to check that one Edit > Undo restores the original.
import json
import os
import subprocess
import time
import traceback

from gi.repository import Gegl, Gimp

out = os.environ["DNI_E2E_DIR"]
report = {}


def pixels(drawable, rect):
    data = drawable.get_buffer().get(rect, 1.0, "R'G'B'A u8", Gegl.AbyssPolicy.CLAMP)
    return bytes(data)


def press_undo(report):
    """One Ctrl+Z into GIMP's image window through XTEST (the only way to undo from
    outside libgimp). No window manager runs under Xvfb: focus the window directly."""
    # The image window's title names the image's size ("... 96x80 - GIMP"); on a slow
    # machine it may take a while to appear.
    size = f"{int(os.environ['DNI_E2E_WIDTH'])}x{int(os.environ['DNI_E2E_HEIGHT'])}"
    deadline = time.monotonic() + 30
    while True:
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "GIMP"],
                               capture_output=True, text=True, timeout=30)
        windows = []
        for window in found.stdout.split():
            name = subprocess.run(["xdotool", "getwindowname", window], capture_output=True,
                                  text=True, timeout=30).stdout.strip()
            windows.append((window, name))
        chosen = [w for w, name in windows if size in name]
        if chosen or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    report["windows"] = windows
    if not chosen:
        return False
    subprocess.run(["xdotool", "windowfocus", "--sync", chosen[0]], timeout=30,
                   capture_output=True)
    time.sleep(0.5)
    subprocess.run(["xdotool", "key", "--clearmodifiers", "ctrl+z"], timeout=30,
                   capture_output=True)
    report["undo_window"] = chosen[0]
    return True


try:
    width = int(os.environ["DNI_E2E_WIDTH"])
    height = int(os.environ["DNI_E2E_HEIGHT"])
    sel = [int(v) for v in os.environ["DNI_E2E_SELECTION"].split(",")]
    report["gimp_version"] = Gimp.version()
    image = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
    layer = Gimp.Layer.new(image, "noisy", width, height, Gimp.ImageType.RGBA_IMAGE, 100.0,
                           Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    rect = Gegl.Rectangle.new(0, 0, width, height)
    with open(os.path.join(out, "input.raw"), "rb") as f:
        data = f.read()
    buffer = layer.get_buffer()
    buffer.set(rect, "R'G'B'A u8", data)
    buffer.flush()
    report["input_roundtrip"] = pixels(layer, rect) == data
    image.select_rectangle(Gimp.ChannelOps.REPLACE, *sel)
    display = None
    if "xdotool" in (os.environ.get("DNI_E2E_UNDO"), os.environ.get("DNI_E2E_DIALOG")):
        display = Gimp.Display.new(image)
        Gimp.displays_flush()
        time.sleep(2.0)
    image.clean_all()
    report["undo_enabled"] = bool(image.undo_is_enabled())

    procedure = Gimp.get_pdb().lookup_procedure(os.environ.get("DNI_E2E_PROCEDURE",
                                                               "plug-in-dni-denoise"))
    report["procedure_found"] = procedure is not None
    config = procedure.create_config()
    interactive = os.environ.get("DNI_E2E_DIALOG") == "xdotool"
    helper = None
    if interactive:
        title = os.environ.get("DNI_E2E_DIALOG_TITLE", "DNI Denoise")
        shot = os.path.join(out, "dialog.xwd")
        helper = subprocess.Popen([
            "sh", "-c", f"w=$(timeout 60 xdotool search --sync --onlyvisible --name '{title}')"
            f" && sleep 2 && (xwd -root -silent > '{shot}' 2>/dev/null || true)"
            " && xdotool windowfocus --sync $w && xdotool key --clearmodifiers alt+o"
            " && echo $w"], stdout=subprocess.PIPE, text=True)
    config.set_property("run-mode", Gimp.RunMode.INTERACTIVE if interactive
                        else Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    config.set_property("family", os.environ["DNI_E2E_FAMILY"])
    config.set_property("strength", float(os.environ.get("DNI_E2E_STRENGTH", "1.0")))
    started = time.monotonic()
    result = procedure.run(config)
    report["seconds"] = round(time.monotonic() - started, 3)
    if helper is not None:
        report["dialog_window"] = helper.communicate(timeout=90)[0].strip()
    status = result.index(0)
    report["status"] = getattr(status, "value_nick", str(status))
    if result.length() > 1:
        report["error"] = str(result.index(1))
    report["size_after"] = [image.get_width(), image.get_height()]
    report["layer_size_after"] = [layer.get_width(), layer.get_height()]
    report["dirty"] = bool(image.is_dirty())
    after_rect = Gegl.Rectangle.new(0, 0, layer.get_width(), layer.get_height())
    with open(os.path.join(out, "after.raw"), "wb") as f:
        f.write(pixels(layer, after_rect))
    if display is not None and os.environ.get("DNI_E2E_UNDO") == "xdotool":
        Gimp.displays_flush()
        report["undo_key_sent"] = press_undo(report)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (image.get_width(), image.get_height()) == (width, height) and \
                    pixels(layer, rect) == data:
                break
            time.sleep(0.25)
        report["size_undone"] = [image.get_width(), image.get_height()]
        with open(os.path.join(out, "undone.raw"), "wb") as f:
            f.write(pixels(layer, Gegl.Rectangle.new(0, 0, layer.get_width(),
                                                     layer.get_height())))
        image.clean_all()
        display.delete()
    image.delete()
except Exception:
    report["exception"] = traceback.format_exc()
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump(report, f, indent=2)
