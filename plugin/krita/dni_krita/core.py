"""Krita documents <-> DNI jobs: read what to filter, then write the result back.

Only the Krita API (libkis) and dni_client.requests; no Qt widgets, no network. Both halves
run on the GUI thread. The user's pixels are never written to: results go into a new
layer (setPixelData is not undoable; adding and removing nodes is), and "replace" is a new
layer plus an undoable removal of the old one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from dni_client import filter_options as fo
from dni_client import requests as rq
from dni_client.requests import Rect, RequestError

TARGET_NEW_LAYER = "new_layer"
TARGET_REPLACE = "replace"
SR_RESIZE = "resize"  # enlarge this image, result in a new layer
SR_NEW_DOCUMENT = "new_document"
MAP_SELECTION = "selection"

_LAYER_HINTS = {
    "grouplayer": "is a group. Select one of the paint layers inside it.",
    "vectorlayer": "is a vector layer. Pick a paint layer, or convert this one with "
                   "Layer ▸ Convert ▸ to Paint Layer.",
    "filelayer": "is a file layer. Convert it with Layer ▸ Convert ▸ to Paint Layer first.",
    "filllayer": "is a fill layer. Convert it with Layer ▸ Convert ▸ to Paint Layer first.",
    "clonelayer": "is a clone layer. Filter the layer it clones, or convert it to a paint "
                  "layer first.",
    "adjustmentlayer": "is a filter layer. Select a paint layer.",
}


class Options(NamedTuple):
    strength: float | None = None
    weights: tuple[float, ...] | None = None
    mode: str = "network"
    selection_only: bool = True
    strength_map: Any = None  # None, "selection" or a Krita Node (greyscale layer)
    target: str = TARGET_NEW_LAYER
    sr_output: str = SR_RESIZE
    padding: int = rq.DEFAULT_PADDING


class Job(NamedTuple):
    """What was sent, and what is needed to put the answer back."""

    doc: Any
    node: Any
    family: dict[str, Any]
    fmt: rq.PixelFormat
    area: rq.WorkArea
    pixels: bytes
    selection_mask: bytes | None  # over area.crop; multiplies the new layer's alpha
    engine_mask: bytes | None  # over area.crop; sent to the engine (replace mode)
    strength_map: bytes | None
    options: Options
    image_size: tuple[int, int]
    name: str

    @property
    def scale(self) -> int:
        return int(self.family.get("scale") or 1)

    def submit_kwargs(self, preview: bool = False) -> dict[str, Any]:
        """Arguments for Client.submit."""
        crop = self.area.crop
        o = self.options
        kwargs: dict[str, Any] = dict(
            family=self.family["name"], width=crop.width, height=crop.height,
            layout=self.fmt.layout, pixels=self.pixels, mode=o.mode, preview=preview)
        if self.strength_map is not None:
            kwargs["strength_map"] = self.strength_map
        elif o.weights is not None:
            kwargs["weights"] = list(o.weights)
        else:
            kwargs["strength"] = o.strength
        if self.engine_mask is not None:
            kwargs["mask"] = self.engine_mask
        return kwargs


def _rect(qrect: Any) -> Rect:
    return Rect(int(qrect.x()), int(qrect.y()), int(qrect.width()), int(qrect.height()))


def image_rect(doc: Any) -> Rect:
    return Rect(0, 0, int(doc.width()), int(doc.height()))


def selection_rect(doc: Any) -> Rect | None:
    sel = doc.selection()
    if sel is None:
        return None
    return Rect(int(sel.x()), int(sel.y()), int(sel.width()), int(sel.height()))


def check_layer(doc: Any, node: Any) -> rq.PixelFormat:
    """The layer's pixel format; RequestError with the fix for anything unusable."""
    if doc is None:
        raise RequestError("Open an image first.")
    if node is None:
        raise RequestError("There is no active layer. Click a paint layer in the Layers "
                           "docker.")
    kind = node.type()
    if kind != "paintlayer":
        hint = _LAYER_HINTS.get(kind, "is not a paint layer. Select a paint layer.")
        raise RequestError(f"The layer '{node.name()}' {hint}")
    return rq.krita_format(node.colorModel(), node.colorDepth())


def check_weights(family: dict[str, Any], strength: float | None,
                  weights: Sequence[float] | None) -> tuple[float | None,
                                                              tuple[float, ...] | None]:
    """The shared rules (filter_options.check_choice: default strength 0.5, weights not
    rescaled), except that giving both is an error here: a script says one or the other."""
    if strength is not None and weights is not None:
        raise RequestError("Give a strength or weights, not both.")
    choice = fo.check_choice(family, strength, weights)
    return choice.strength, choice.weights


def _strength_map_bytes(doc: Any, source: Any, crop: Rect, node: Any) -> bytes:
    if source == MAP_SELECTION:
        sel = doc.selection()
        if sel is None:
            raise RequestError("The strength map should come from the selection, but "
                               "nothing is selected.")
        return bytes(sel.pixelData(crop.x, crop.y, crop.width, crop.height))
    if source is node:
        raise RequestError("The strength map cannot be the layer being filtered.")
    if source.type() not in ("paintlayer", "transparencymask", "selectionmask", "filterlayer"):
        raise RequestError(f"The layer '{source.name()}' cannot serve as a strength map: use "
                           "a greyscale paint layer.")
    data = bytes(source.pixelData(crop.x, crop.y, crop.width, crop.height))
    return rq.grey_plane(data, source.colorModel(), source.colorDepth(), crop.width,
                         crop.height)


def prepare(doc: Any, node: Any, family: dict[str, Any], options: Options,
            crop: Rect | None = None) -> Job:
    """Read everything a job needs from the document (GUI thread). `crop` forces the
    area (previews); otherwise the selection or the layer decides."""
    fmt = check_layer(doc, node)
    strength, weights = check_weights(family, options.strength, options.weights)
    if options.strength_map is not None and weights is not None:
        raise RequestError("A strength map varies the strength along the family's axis; "
                           "use it with the strength slider, not the mixer.")
    options = options._replace(strength=strength, weights=weights)
    image = image_rect(doc)
    sel_rect = selection_rect(doc)
    use_selection = (options.selection_only and sel_rect is not None
                     and options.strength_map != MAP_SELECTION)
    if crop is not None:
        area = rq.WorkArea(crop.intersect(image), crop.intersect(image),
                           use_selection and not sel_rect.intersect(crop).empty)  # type: ignore[union-attr]
    else:
        area = rq.work_area(image, _rect(node.bounds()) if node.bounds() is not None else None,
                            sel_rect if use_selection else None, padding=options.padding)
    c = area.crop
    mask: bytes | None = None
    if area.selected:
        mask = bytes(doc.selection().pixelData(c.x, c.y, c.width, c.height))
        if crop is None and rq.mask_is_empty(mask):
            raise RequestError("The selection is empty: nothing is selected inside the "
                               "image. Select an area, or Select ▸ Deselect.")
    pixels = bytes(node.pixelData(c.x, c.y, c.width, c.height))
    rq.check_bytes(pixels, c, fmt.bytes_per_pixel, "layer pixels")
    smap = None
    if options.strength_map is not None:
        smap = _strength_map_bytes(doc, options.strength_map, c, node)
    replace = options.target == TARGET_REPLACE
    name = rq.layer_name(str(family.get("title") or family["name"]),
                         None if smap is not None else strength, weights, mode=options.mode)
    return Job(doc, node, family, fmt, area, pixels,
               None if replace else mask, mask if replace else None, smap, options,
               (image.width, image.height), name)


# -- applying results --------------------------------------------------------------------

def _new_paint_layer(doc: Any, like: Any, name: str) -> Any:
    layer = doc.createNode(name, "paintlayer")
    # The image's colour space may differ from the source layer's: match the source.
    if (layer.colorModel(), layer.colorDepth()) != (like.colorModel(), like.colorDepth()):
        layer.setColorSpace(like.colorModel(), like.colorDepth(), like.colorProfile())
    return layer


def _copy_of(doc: Any, node: Any, name: str) -> Any:
    """A new paint layer with the node's pixels and look. Not Node.duplicate(): in Krita
    5.1.5, removing a layer after duplicating it aborted Krita (seen under Xvfb)."""
    layer = _new_paint_layer(doc, node, name)
    b = _rect(node.bounds())
    if not b.empty:
        layer.setPixelData(bytes(node.pixelData(b.x, b.y, b.width, b.height)), b.x, b.y,
                           b.width, b.height)
    for getter, setter in (("opacity", "setOpacity"), ("blendingMode", "setBlendingMode"),
                           ("visible", "setVisible"), ("alphaLocked", "setAlphaLocked"),
                           ("inheritAlpha", "setInheritAlpha"), ("colorLabel", "setColorLabel")):
        if hasattr(node, getter) and hasattr(layer, setter):
            getattr(layer, setter)(getattr(node, getter)())
    return layer


def _node_alive(doc: Any, node: Any) -> bool:
    """Whether `node` is still in the document (the user may have deleted it)."""
    try:
        return node.parentNode() is not None
    except Exception:
        return False


def _result_pixels(job: Job, width: int, height: int, layout: str, data: bytes) -> bytes:
    crop = job.area.crop
    scale = job.scale
    if (width, height) != (crop.width * scale, crop.height * scale):
        raise RequestError(f"The backend returned {width}x{height} pixels for a "
                           f"{crop.width}x{crop.height} area (scale {scale}); nothing was "
                           "changed.")
    if layout not in (job.fmt.layout, f"krita:{job.fmt.depth}"):
        raise RequestError(f"The backend returned {layout} pixels, expected "
                           f"{job.fmt.layout}; nothing was changed.")
    rq.check_bytes(data, Rect(0, 0, width, height), job.fmt.bytes_per_pixel, "result")
    if job.selection_mask is not None:
        mask = rq.upscale_plane(job.selection_mask, crop.width, crop.height, scale)
        data = rq.multiply_alpha(data, mask, job.fmt)
    return data


def apply_result(job: Job, width: int, height: int, layout: str, data: bytes) -> Any:
    """Put a finished job's pixels into the document; returns the new layer (GUI thread).

    Checks everything before touching the document, so a bad answer changes nothing.
    """
    doc, node = job.doc, job.node
    if not _node_alive(doc, node):
        raise RequestError(f"The layer '{job.name}' was filtered from has been deleted; "
                           "nothing was changed.")
    if (int(doc.width()), int(doc.height())) != job.image_size:
        raise RequestError("The image was resized while DNI was working; nothing was "
                           "changed. Run the filter again.")
    pixels = _result_pixels(job, width, height, layout, data)
    scale = job.scale
    place = rq.placement(job.area.crop, scale)
    if scale > 1 and job.options.sr_output == SR_NEW_DOCUMENT:
        return _into_new_document(job, place, pixels)
    if scale > 1:
        w, h = job.image_size
        doc.scaleImage(w * scale, h * scale, int(doc.xRes()), int(doc.yRes()), "Bicubic")
        doc.waitForDone()
    parent = node.parentNode()
    if job.options.target == TARGET_REPLACE:
        layer = _copy_of(doc, node, job.name)
        layer.setPixelData(pixels, place.x, place.y, place.width, place.height)
        parent.addChildNode(layer, node)
        node.remove()
    else:
        layer = _new_paint_layer(doc, node, job.name)
        layer.setPixelData(pixels, place.x, place.y, place.width, place.height)
        parent.addChildNode(layer, node)
    doc.setActiveNode(layer)
    doc.refreshProjection()
    return layer


def _into_new_document(job: Job, place: Rect, pixels: bytes) -> Any:
    from krita import Krita  # noqa: PLC0415 - only this path needs the application

    src = job.doc
    node = job.node
    name = f"{job.name} of {src.name() or 'image'}"
    doc = Krita.instance().createDocument(place.width, place.height, name, node.colorModel(),
                                          node.colorDepth(), node.colorProfile(),
                                          float(src.resolution()))
    layers: list[Any] = [n for n in doc.rootNode().childNodes() if n.type() == "paintlayer"]
    if layers:
        layer = layers[0]
        layer.setName(job.name)
    else:
        layer = doc.createNode(job.name, "paintlayer")
        doc.rootNode().addChildNode(layer, None)
    layer.setPixelData(pixels, 0, 0, place.width, place.height)
    doc.refreshProjection()
    doc.setModified(True)
    window = Krita.instance().activeWindow()
    if window is not None:
        window.addView(doc)
    return layer
