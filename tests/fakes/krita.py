"""A small fake of Krita's Python API (libkis), enough for the DNI plugin's logic.

Pixels are kept in Krita's real byte layouts (U8/U16: B, G, R, A; F16/F32: R, G, B, A;
selections: one byte per pixel), so the plugin's byte handling is tested for real.
Undoable operations (adding/removing nodes, scaling the image) are recorded in
`Document.undo_log`; setPixelData is not (as in Krita).
"""

from __future__ import annotations

import itertools
from typing import Any

BYTES_PER_PIXEL = {("RGBA", "U8"): 4, ("RGBA", "U16"): 8, ("RGBA", "F16"): 8,
                   ("RGBA", "F32"): 16, ("GRAYA", "U8"): 2, ("GRAYA", "U16"): 4,
                   ("CMYKA", "U8"): 5, ("LABA", "U16"): 8, ("A", "U8"): 1}
_ids = itertools.count(1)


class QRect:
    def __init__(self, x: int, y: int, w: int, h: int) -> None:
        self._r = (x, y, w, h)

    def x(self) -> int:
        return self._r[0]

    def y(self) -> int:
        return self._r[1]

    def width(self) -> int:
        return self._r[2]

    def height(self) -> int:
        return self._r[3]


class _Plane:
    """A canvas-sized pixel store; reads outside it are transparent (zero bytes)."""

    def __init__(self, width: int, height: int, bpp: int) -> None:
        self.width, self.height, self.bpp = width, height, bpp
        self.data = bytearray(width * height * bpp)

    def read(self, x: int, y: int, w: int, h: int) -> bytes:
        out = bytearray(w * h * self.bpp)
        for row in range(h):
            sy = y + row
            if not 0 <= sy < self.height:
                continue
            x0, x1 = max(x, 0), min(x + w, self.width)
            if x0 >= x1:
                continue
            src = (sy * self.width + x0) * self.bpp
            dst = (row * w + (x0 - x)) * self.bpp
            out[dst:dst + (x1 - x0) * self.bpp] = self.data[src:src + (x1 - x0) * self.bpp]
        return bytes(out)

    def write(self, data: bytes, x: int, y: int, w: int, h: int) -> None:
        assert len(data) == w * h * self.bpp, (len(data), w, h, self.bpp)
        for row in range(h):
            sy = y + row
            if not 0 <= sy < self.height:
                continue
            x0, x1 = max(x, 0), min(x + w, self.width)
            if x0 >= x1:
                continue
            dst = (sy * self.width + x0) * self.bpp
            src = (row * w + (x0 - x)) * self.bpp
            self.data[dst:dst + (x1 - x0) * self.bpp] = data[src:src + (x1 - x0) * self.bpp]

    def bbox(self) -> tuple[int, int, int, int]:
        rows = [y for y in range(self.height)
                if any(self.data[y * self.width * self.bpp:(y + 1) * self.width * self.bpp])]
        if not rows:
            return (0, 0, 0, 0)
        cols = [x for x in range(self.width)
                if any(self.data[(y * self.width + x) * self.bpp + b]
                       for y in rows for b in range(self.bpp))]
        return (min(cols), min(rows), max(cols) - min(cols) + 1, max(rows) - min(rows) + 1)

    def scaled(self, width: int, height: int) -> _Plane:
        out = _Plane(width, height, self.bpp)
        for y in range(height):
            sy = y * self.height // height
            for x in range(width):
                sx = x * self.width // width
                s = (sy * self.width + sx) * self.bpp
                d = (y * width + x) * self.bpp
                out.data[d:d + self.bpp] = self.data[s:s + self.bpp]
        return out


class Node:
    def __init__(self, doc: Document, name: str, kind: str = "paintlayer",
                 model: str | None = None, depth: str | None = None) -> None:
        self.doc = doc
        self._name = name
        self._type = kind
        self._model = model or doc.colorModel()
        self._depth = depth or doc.colorDepth()
        self._profile = doc.colorProfile()
        self._children: list[Node] = []
        self._parent: Node | None = None
        self._id = next(_ids)
        self._visible = True
        self.plane = _Plane(doc.width(), doc.height(), BYTES_PER_PIXEL[(self._model,
                                                                         self._depth)])

    # identity and tree
    def name(self) -> str:
        return self._name

    def setName(self, name: str) -> None:
        self._name = name

    def type(self) -> str:
        return self._type

    def uniqueId(self) -> int:
        return self._id

    def parentNode(self) -> Node | None:
        return self._parent

    def childNodes(self) -> list[Node]:
        return list(self._children)

    def visible(self) -> bool:
        return self._visible

    def locked(self) -> bool:
        return getattr(self, "_locked", False)

    def setLocked(self, value: bool) -> None:
        self._locked = bool(value)

    def addChildNode(self, child: Node, above: Node | None) -> bool:
        index = 0 if above is None else self._children.index(above) + 1
        self._children.insert(index, child)
        child._parent = self
        self.doc.undo_log.append(("add", child.name()))
        return True

    def remove(self) -> bool:
        if self._parent is None:
            return False
        self._parent._children.remove(self)
        self._parent = None
        self.doc.undo_log.append(("remove", self.name()))
        return True

    def duplicate(self) -> Node:
        copy = Node(self.doc, self._name, self._type, self._model, self._depth)
        copy.plane.data[:] = self.plane.data
        return copy

    # colour
    def colorModel(self) -> str:
        return self._model

    def colorDepth(self) -> str:
        return self._depth

    def colorProfile(self) -> str:
        return self._profile

    def setColorSpace(self, model: str, depth: str, profile: str) -> bool:
        if any(self.plane.data):
            raise NotImplementedError("the fake converts empty layers only")
        self._model, self._depth, self._profile = model, depth, profile
        self.plane = _Plane(self.doc.width(), self.doc.height(), BYTES_PER_PIXEL[(model, depth)])
        return True

    # pixels
    def bounds(self) -> QRect:
        return QRect(*self.plane.bbox())

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        return self.plane.read(x, y, w, h)

    def projectionPixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        return self.plane.read(x, y, w, h)

    def setPixelData(self, data: bytes, x: int, y: int, w: int, h: int) -> bool:
        self.plane.write(bytes(data), x, y, w, h)
        return True


class Selection:
    def __init__(self, width: int, height: int) -> None:
        self.plane = _Plane(width, height, 1)

    def select(self, x: int, y: int, w: int, h: int, value: int) -> None:
        self.plane.write(bytes([value]) * (w * h), x, y, w, h)

    def setPixelData(self, data: bytes, x: int, y: int, w: int, h: int) -> None:
        self.plane.write(bytes(data), x, y, w, h)

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        return self.plane.read(x, y, w, h)

    def x(self) -> int:
        return self.plane.bbox()[0]

    def y(self) -> int:
        return self.plane.bbox()[1]

    def width(self) -> int:
        return self.plane.bbox()[2]

    def height(self) -> int:
        return self.plane.bbox()[3]


class Document:
    def __init__(self, width: int, height: int, name: str = "fake", model: str = "RGBA",
                 depth: str = "U8", profile: str = "sRGB-elle-V2-srgbtrc.icc",
                 resolution: float = 72.0) -> None:
        self._w, self._h, self._name = width, height, name
        self._model, self._depth, self._profile = model, depth, profile
        self._res = resolution
        self.undo_log: list[tuple[str, Any]] = []
        self._root = Node(self, "root", "grouplayer")
        self._selection: Selection | None = None
        self._active: Node | None = None
        self._annotations: dict[str, tuple[str, bytes]] = {}  # not undoable (as in Krita)
        self.modified = False
        self.closed = False

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h

    def name(self) -> str:
        return self._name

    def colorModel(self) -> str:
        return self._model

    def colorDepth(self) -> str:
        return self._depth

    def colorProfile(self) -> str:
        return self._profile

    def resolution(self) -> int:
        return int(self._res)

    def xRes(self) -> float:
        return self._res

    def yRes(self) -> float:
        return self._res

    def rootNode(self) -> Node:
        return self._root

    def topLevelNodes(self) -> list[Node]:
        return self._root.childNodes()

    def createNode(self, name: str, kind: str) -> Node:
        return Node(self, name, kind)

    def nodeByName(self, name: str) -> Node | None:
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.name() == name:
                return node
            stack += node.childNodes()
        return None

    def annotation(self, key: str) -> bytes:
        return self._annotations.get(key, ("", b""))[1]

    def setAnnotation(self, key: str, description: str, data: bytes) -> None:
        self._annotations[key] = (description, bytes(data))

    def activeNode(self) -> Node | None:
        return self._active

    def setActiveNode(self, node: Node) -> None:
        self._active = node

    def selection(self) -> Selection | None:
        return self._selection

    def setSelection(self, selection: Selection | None) -> None:
        self._selection = selection

    def scaleImage(self, w: int, h: int, xres: int, yres: int, strategy: str) -> bool:
        stack = [self._root]
        while stack:
            node = stack.pop()
            node.plane = node.plane.scaled(w, h)
            stack += node.childNodes()
        if self._selection is not None:
            self._selection.plane = self._selection.plane.scaled(w, h)
        self._w, self._h = w, h
        self.undo_log.append(("scale", (w, h)))
        return True

    def refreshProjection(self) -> None:
        pass

    def waitForDone(self) -> None:
        pass

    def setModified(self, value: bool) -> None:
        self.modified = value

    def close(self) -> bool:
        self.closed = True
        return True


class Window:
    def __init__(self) -> None:
        self.views: list[Document] = []

    def addView(self, doc: Document) -> None:
        self.views.append(doc)


class Krita:
    _instance: Krita | None = None

    def __init__(self) -> None:
        self._documents: list[Document] = []
        self._active: Document | None = None
        self._settings: dict[tuple[str, str], str] = {}
        self.app_data = ""
        self.window = Window()
        self._dni_fake_no_register = True  # the plugin skips its Qt UI under this fake

    @classmethod
    def instance(cls) -> Krita:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    @classmethod
    def reset(cls) -> Krita:
        cls._instance = cls()
        return cls._instance

    def documents(self) -> list[Document]:
        return list(self._documents)

    def activeDocument(self) -> Document | None:
        return self._active

    def setActiveDocument(self, doc: Document | None) -> None:
        self._active = doc

    def add_document(self, doc: Document, active: bool = True) -> Document:
        self._documents.append(doc)
        if active:
            self._active = doc
        return doc

    def createDocument(self, w: int, h: int, name: str, model: str, depth: str,
                       profile: str, resolution: float) -> Document:
        doc = Document(w, h, name, model, depth, profile, resolution)
        layer = doc.createNode("Background", "paintlayer")
        doc.rootNode().addChildNode(layer, None)
        doc.undo_log.clear()
        self._documents.append(doc)
        return doc

    def activeWindow(self) -> Window:
        return self.window

    def readSetting(self, group: str, key: str, default: str) -> str:
        return self._settings.get((group, key), default)

    def writeSetting(self, group: str, key: str, value: str) -> None:
        self._settings[(group, key)] = value

    def getAppDataLocation(self) -> str:
        return self.app_data

    def action(self, name: str) -> None:
        return None


class Extension:
    def __init__(self, parent: Any = None) -> None:
        self.parent = parent


class DockWidget:
    pass


class DockWidgetFactoryBase:
    DockRight = 1


class DockWidgetFactory:
    def __init__(self, *args: Any) -> None:
        self.args = args
