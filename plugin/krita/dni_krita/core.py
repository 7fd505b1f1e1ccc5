"""Krita documents <-> DNI jobs: read what to filter, then write the result back.

Only the Krita API (libkis) and dni_client; no Qt widgets, no network. Both halves run on
the GUI thread. The user's pixels are never written to: results go into a new layer
(setPixelData is not undoable; adding and removing nodes is), and "replace" is a new layer
plus an undoable removal of the old one (one undo step: undo_groups).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from dni_client import auto
from dni_client import pixels as px
from dni_client.errors import RequestError
from dni_client.families import FamilyInfo
from dni_client.geometry import DEFAULT_PADDING, Rect, WorkArea, work_area
from dni_client.job import Amount, JobSpec

TARGET_NEW_LAYER = "new_layer"
TARGET_REPLACE = "replace"
SR_RESIZE = "resize"  # enlarge this image, result in a new layer
SR_NEW_DOCUMENT = "new_document"
MAP_SELECTION = "selection"
MAP_AUTO = auto.AUTO  # the backend reads a strength map off the pixels (dni_client.auto)

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

_MODEL_HINTS = {
    "CMYKA": "Convert it with Image ▸ Convert Image Color Space… to RGB/Alpha, run the "
             "filter, and convert back if you need CMYK.",
    "LABA": "Convert it with Image ▸ Convert Image Color Space… to RGB/Alpha; L*a*b* "
            "values would be misread as RGB.",
    "GRAYA": "Convert it with Image ▸ Convert Image Color Space… to RGB/Alpha (the "
             "networks work on colour).",
}


class Options(NamedTuple):
    amount: Amount = Amount(0.5, None)
    mode: str = "network"
    selection_only: bool = True
    strength_map: Any = None  # None, "selection" or a Krita Node (greyscale layer)
    target: str = TARGET_NEW_LAYER
    sr_output: str = SR_NEW_DOCUMENT  # the source stays as it is; nothing to undo
    padding: int = DEFAULT_PADDING


class KritaJob(NamedTuple):
    """What was sent, and what is needed to put the answer back."""

    doc: Any
    node: Any
    spec: JobSpec
    area: WorkArea
    selection_mask: bytes | None  # over area.crop; multiplies the new layer's alpha
    options: Options
    image_size: tuple[int, int]

    @property
    def scale(self) -> int:
        return self.spec.scale

    @property
    def name(self) -> str:
        return self.spec.result_name()


def _rect(qrect: Any) -> Rect:
    return Rect(int(qrect.x()), int(qrect.y()), int(qrect.width()), int(qrect.height()))


def image_rect(doc: Any) -> Rect:
    return Rect(0, 0, int(doc.width()), int(doc.height()))


def selection_rect(doc: Any) -> Rect | None:
    sel = doc.selection()
    if sel is None:
        return None
    return Rect(int(sel.x()), int(sel.y()), int(sel.width()), int(sel.height()))


def layer_format(color_model: str, depth: str) -> px.PixelFormat:
    """The format of an RGBA layer; RequestError naming the fix for anything else."""
    if color_model != "RGBA":
        hint = _MODEL_HINTS.get(color_model, "Convert it with Image ▸ Convert Image Color "
                                "Space… to RGB/Alpha first.")
        raise RequestError(f"DNI works on RGB images; this layer is {color_model}/{depth}. "
                           + hint)
    fmt = px.KRITA_FORMATS.get(depth)
    if fmt is None:
        raise RequestError(f"The colour depth {depth} is not supported; convert the image "
                           "to 8-bit, 16-bit or 32-bit float RGB/Alpha.")
    return fmt


def check_layer(doc: Any, node: Any) -> px.PixelFormat:
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
    return layer_format(node.colorModel(), node.colorDepth())


def strength_plane(pixels: bytes, color_model: str, depth: str, count: int) -> bytes:
    """One byte per pixel from a layer or mask used as a strength map."""
    if color_model == "A" or (color_model == "GRAYA" and depth == "U8" and len(pixels) == count):
        return px.grey_plane(pixels, None, 1, count)  # a mask: one byte per pixel already
    channels = {"RGBA": 4, "GRAYA": 2}.get(color_model)
    if channels is None:
        raise RequestError(f"A {color_model} layer cannot serve as a strength map; use a "
                           "greyscale paint layer or a selection.")
    return px.grey_plane(pixels, px.KRITA_FORMATS.get(depth), channels, count)


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
    return strength_plane(data, source.colorModel(), source.colorDepth(), crop.area)


def _area(doc: Any, node: Any, options: Options, crop: Rect | None) -> WorkArea:
    image = image_rect(doc)
    sel_rect = selection_rect(doc)
    use_selection = (options.selection_only and sel_rect is not None
                     and options.strength_map != MAP_SELECTION)
    if crop is not None:
        inside = crop.intersect(image)
        return WorkArea(inside, inside, use_selection and sel_rect is not None
                        and not sel_rect.intersect(crop).empty)
    bounds = node.bounds()
    return work_area(image, _rect(bounds) if bounds is not None else None,
                     sel_rect if use_selection else None, padding=options.padding)


def _selection_over(doc: Any, area: WorkArea, whole: bool) -> bytes | None:
    if not area.selected:
        return None
    c = area.crop
    mask = bytes(doc.selection().pixelData(c.x, c.y, c.width, c.height))
    if whole and px.mask_is_empty(mask):
        raise RequestError("The selection is empty: nothing is selected inside the "
                           "image. Select an area, or Select ▸ Deselect.")
    return mask


def prepare(doc: Any, node: Any, family: FamilyInfo, options: Options,
            crop: Rect | None = None, *,
            again: tuple[WorkArea, bytes | None] | None = None) -> KritaJob:
    """Read everything a job needs from the document (GUI thread). `crop` forces the
    area (previews); `again` is the area and selection of an earlier result being made
    anew (a re-editable DNI layer); otherwise the selection or the layer decides."""
    fmt = check_layer(doc, node)
    amount = Amount(*family.check_amount(*options.amount[:2]), options.amount.preset)
    if options.strength_map is not None and amount.weights is not None:
        raise RequestError("A strength map varies the strength along the family's axis; "
                           "use it with the strength slider, not the mixer.")
    options = options._replace(amount=amount)
    if again is not None:
        area, mask = again
    else:
        area = _area(doc, node, options, crop)
        mask = _selection_over(doc, area, whole=crop is None)
    c = area.crop
    pixels = bytes(node.pixelData(c.x, c.y, c.width, c.height))
    px.check_bytes(pixels, c.width, c.height, fmt.bytes_per_pixel, "layer pixels")
    smap: bytes | str | None = None
    if options.strength_map == MAP_AUTO:
        auto.check_family(family)
        smap = auto.AUTO
    elif options.strength_map is not None:
        smap = _strength_map_bytes(doc, options.strength_map, c, node)
    replace = options.target == TARGET_REPLACE
    spec = JobSpec(family, c, fmt, pixels, amount, options.mode,
                   mask=mask if replace else None, strength_map=smap,
                   preview=crop is not None)
    return KritaJob(doc, node, spec, area, None if replace else mask, options,
                    (image_rect(doc).width, image_rect(doc).height))


# -- applying results --------------------------------------------------------------------

def new_paint_layer(doc: Any, like: Any, name: str) -> Any:
    layer = doc.createNode(name, "paintlayer")
    # The image's colour space may differ from the source layer's: match the source.
    if (layer.colorModel(), layer.colorDepth()) != (like.colorModel(), like.colorDepth()):
        layer.setColorSpace(like.colorModel(), like.colorDepth(), like.colorProfile())
    return layer


_LOOK = (("opacity", "setOpacity"), ("blendingMode", "setBlendingMode"),
         ("visible", "setVisible"), ("alphaLocked", "setAlphaLocked"),
         ("inheritAlpha", "setInheritAlpha"), ("colorLabel", "setColorLabel"))


def _copy_of(doc: Any, node: Any, name: str) -> Any:
    """A new paint layer with the node's pixels and look. Not Node.duplicate(): in Krita
    5.1.5, removing a layer after duplicating it aborted Krita (seen under Xvfb)."""
    layer = new_paint_layer(doc, node, name)
    b = _rect(node.bounds())
    if not b.empty:
        layer.setPixelData(bytes(node.pixelData(b.x, b.y, b.width, b.height)), b.x, b.y,
                           b.width, b.height)
    _copy_look(node, layer)
    return layer


def _copy_look(node: Any, layer: Any) -> None:
    for getter, setter in _LOOK:
        if hasattr(node, getter) and hasattr(layer, setter):
            getattr(layer, setter)(getattr(node, getter)())


def all_nodes(node: Any) -> Any:
    yield node
    for child in node.childNodes():
        yield from all_nodes(child)


def _unique_name(doc: Any, name: str) -> str:
    """'DNI Denoise 40%', or 'DNI Denoise 40% (2)' when that name is taken: the artist
    tells the results apart in the Layers docker."""
    taken = {n.name() for n in all_nodes(doc.rootNode())}
    number = 2
    unique = name
    while unique in taken:
        unique = f"{name} ({number})"
        number += 1
    return unique


def _top_result_above(node: Any) -> Any:
    """The layer to put a new result above: the source, or the DNI results already
    stacked right above it, so that results stack upwards in the order they were made."""
    siblings = node.parentNode().childNodes()  # bottom to top
    anchor = node
    for sibling in siblings[siblings.index(node) + 1:]:
        if not sibling.name().startswith("DNI "):
            break
        anchor = sibling
    return anchor


def node_alive(node: Any) -> bool:
    """Whether `node` is still in the document (the user may have deleted it)."""
    try:
        return node.parentNode() is not None
    except RuntimeError:  # its C++ object is gone
        return False


def result_pixels(job: KritaJob, width: int, height: int, layout: str, data: bytes) -> bytes:
    """The answer checked, with the selection's soft edges applied to its alpha."""
    data = job.spec.checked_pixels(width, height, layout, data)
    if job.selection_mask is not None:
        crop = job.area.crop
        mask = px.upscale_plane(job.selection_mask, crop.width, crop.height, job.scale)
        data = px.multiply_alpha(data, mask, job.spec.fmt)
    return data


def apply_result(job: KritaJob, width: int, height: int, layout: str, data: bytes,
                 in_place_of: Any = None) -> Any:
    """Put a finished job's pixels into the document; returns the new layer (GUI thread).
    `in_place_of`: an earlier result made anew; the new layer takes its place and look.

    Checks everything before touching the document, so a bad answer changes nothing.
    """
    doc, node = job.doc, job.node
    if not node_alive(node):
        raise RequestError(f"The layer '{job.name}' was filtered from has been deleted; "
                           "nothing was changed.")
    if (int(doc.width()), int(doc.height())) != job.image_size:
        raise RequestError("The image was resized while DNI was working; nothing was "
                           "changed. Run the filter again.")
    pixels = result_pixels(job, width, height, layout, data)
    place = job.area.crop.scaled(job.scale)
    if job.scale > 1 and job.options.sr_output == SR_NEW_DOCUMENT:
        return _into_new_document(job, place, pixels)
    if job.scale > 1:
        w, h = job.image_size
        doc.scaleImage(w * job.scale, h * job.scale, int(doc.xRes()), int(doc.yRes()),
                       "Bicubic")
        doc.waitForDone()
        _keep_apparent_size(doc, job.scale)
    if in_place_of is not None and node_alive(in_place_of):
        return _instead_of(job, in_place_of, pixels, place)
    parent = node.parentNode()
    replace = job.options.target == TARGET_REPLACE
    name = _unique_name(doc, job.name)
    layer = _copy_of(doc, node, name) if replace else new_paint_layer(doc, node, name)
    layer.setPixelData(pixels, place.x, place.y, place.width, place.height)
    parent.addChildNode(layer, node if replace else _top_result_above(node))
    if replace:
        node.remove()
    doc.setActiveNode(layer)
    doc.refreshProjection()
    # The projection updates asynchronously: finish it before a script goes on (Krita
    # 5.1.5 crashed once, in the end-to-end test, when the selection was dropped right
    # after a result was added).
    doc.waitForDone()
    return layer


def _instead_of(job: KritaJob, old: Any, pixels: bytes, place: Rect) -> Any:
    """The new result where `old` was, with its look; then `old` goes (several commands
    in Krita's history, which undo_groups makes one undo step)."""
    doc = job.doc
    layer = new_paint_layer(doc, job.node, "DNI")  # named once the old one is gone
    layer.setPixelData(pixels, place.x, place.y, place.width, place.height)
    _copy_look(old, layer)
    old.parentNode().addChildNode(layer, old)
    old.remove()
    layer.setName(_unique_name(doc, job.name))
    doc.setActiveNode(layer)
    doc.refreshProjection()
    doc.waitForDone()
    return layer


def _keep_apparent_size(doc: Any, factor: int) -> None:
    """After enlarging the image, zoom the view out by the same factor, so the picture
    does not suddenly fill the screen (the artist compares it with what it was)."""
    from krita import Krita

    window = Krita.instance().activeWindow()
    view = getattr(window, "activeView", lambda: None)() if window is not None else None
    if view is None or view.document() is None \
            or view.document().rootNode().uniqueId() != doc.rootNode().uniqueId():
        return
    canvas = view.canvas()
    if canvas is not None:
        canvas.setZoomLevel(canvas.zoomLevel() / factor)


def _into_new_document(job: KritaJob, place: Rect, pixels: bytes) -> Any:
    from krita import Krita  # only this path needs the application

    src, node = job.doc, job.node
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
