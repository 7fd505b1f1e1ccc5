"""Fake libgimp 3 (the part the DNI plug-in uses), with GIMP's semantics where they matter.

* `Drawable.merge_shadow` blends the shadow buffer into the drawable through the
  selection (value / 255, soft edges included) within `mask_intersect`'s bounds, and, with
  undo=True, records an undo step; so does `Image.scale`.
* Undo steps inside `undo_group_start`/`undo_group_end` form one group; `Image.undo()` is
  a test helper (libgimp has no such call) that restores the state before the last group.
* Progress, messages and display flushes are recorded in `LOG`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import numpy as np

from . import Gegl
from .GLib import Error

LOG: list[tuple[Any, ...]] = []
DIRECTORY = ["/nonexistent-gimp-profile"]
MAIN_CALLS: list[tuple[Any, list[str]]] = []


def reset(directory: str) -> None:
    LOG.clear()
    DIRECTORY[0] = directory


# -- enums -------------------------------------------------------------------------------

class RunMode(enum.IntEnum):
    INTERACTIVE = 0
    NONINTERACTIVE = 1
    WITH_LAST_VALS = 2


class PDBStatusType(enum.IntEnum):
    EXECUTION_ERROR = 0
    CALLING_ERROR = 1
    PASS_THROUGH = 2
    SUCCESS = 3
    CANCEL = 4


class PDBProcType(enum.IntEnum):
    INTERNAL = 0
    PLUGIN = 1
    PERSISTENT = 2
    TEMPORARY = 3


class ProcedureSensitivityMask(enum.IntFlag):
    DRAWABLE = 1 << 0
    DRAWABLES = 1 << 2
    NO_DRAWABLES = 1 << 3
    NO_IMAGE = 1 << 4
    ALWAYS = 0xFFFF


class ImageBaseType(enum.IntEnum):
    RGB = 0
    GRAY = 1
    INDEXED = 2


class ImageType(enum.IntEnum):
    RGB_IMAGE = 0
    RGBA_IMAGE = 1
    GRAY_IMAGE = 2
    GRAYA_IMAGE = 3


class Precision(enum.IntEnum):
    U8_LINEAR = 100
    U8_NON_LINEAR = 150
    U8_PERCEPTUAL = 175
    U16_LINEAR = 200
    U16_NON_LINEAR = 250
    U16_PERCEPTUAL = 275
    U32_LINEAR = 300
    U32_NON_LINEAR = 350
    HALF_LINEAR = 500
    HALF_NON_LINEAR = 550
    FLOAT_LINEAR = 600
    FLOAT_NON_LINEAR = 650
    DOUBLE_LINEAR = 700


class InterpolationType(enum.IntEnum):
    NONE = 0
    LINEAR = 1
    CUBIC = 2
    NOHALO = 3
    LOHALO = 4


class ChannelOps(enum.IntEnum):
    ADD = 0
    SUBTRACT = 1
    REPLACE = 2
    INTERSECT = 3


class LayerMode(enum.IntEnum):
    NORMAL = 28


# -- progress, context, messages ---------------------------------------------------------

def progress_init(message: str) -> bool:
    LOG.append(("progress_init", message))
    return True


def progress_update(percentage: float) -> bool:
    if not 0.0 <= percentage <= 1.0:
        raise ValueError(f"progress {percentage} outside 0..1")
    LOG.append(("progress_update", percentage))
    return True


def progress_set_text(message: str | None = None) -> bool:
    LOG.append(("progress_set_text", message))
    return True


def progress_pulse() -> bool:
    LOG.append(("progress_pulse",))
    return True


def progress_end() -> bool:
    LOG.append(("progress_end",))
    return True


def message(text: str) -> bool:
    LOG.append(("message", text))
    return True


def displays_flush() -> None:
    LOG.append(("displays_flush",))


_context: list[dict[str, Any]] = [{"interpolation": InterpolationType.LINEAR}]


def context_push() -> bool:
    _context.append(dict(_context[-1]))
    LOG.append(("context_push",))
    return True


def context_pop() -> bool:
    if len(_context) == 1:
        raise RuntimeError("context_pop without push")
    _context.pop()
    LOG.append(("context_pop",))
    return True


def context_set_interpolation(interpolation: InterpolationType) -> bool:
    _context[-1]["interpolation"] = interpolation
    LOG.append(("context_set_interpolation", interpolation))
    return True


def directory() -> str:
    return DIRECTORY[0]


# -- plug-in, procedures, configs --------------------------------------------------------

class PlugIn:
    __gtype__: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__gtype__ = cls


def main(gtype: Any, argv: list[str]) -> int:
    MAIN_CALLS.append((gtype, list(argv)))
    return 0


class ValueArray:
    def __init__(self, values: list[Any]) -> None:
        self._values = values

    def index(self, i: int) -> Any:
        return self._values[i]

    def length(self) -> int:
        return len(self._values)


class _Arg:
    def __init__(self, kind: str, name: str, nick: str, blurb: str | None, default: Any,
                 low: Any = None, high: Any = None) -> None:
        self.kind, self.name, self.nick, self.blurb = kind, name, nick, blurb
        self.default, self.low, self.high = default, low, high


class Procedure:
    def __init__(self, plug_in: PlugIn, name: str, proc_type: PDBProcType,
                 run_func: Callable[..., Any]) -> None:
        if not isinstance(proc_type, PDBProcType):
            raise TypeError("proc_type must be a Gimp.PDBProcType")
        self.plug_in, self.name, self.proc_type, self.run_func = (plug_in, name, proc_type,
                                                                 run_func)
        self.args: dict[str, _Arg] = {}
        self.meta: dict[str, Any] = {"menu_paths": []}

    @classmethod
    def new(cls, plug_in: PlugIn, name: str, proc_type: PDBProcType,
            run_func: Callable[..., Any]) -> Procedure:
        return cls(plug_in, name, proc_type, run_func)

    def get_name(self) -> str:
        return self.name

    def set_image_types(self, types: str) -> None:
        self.meta["image_types"] = types

    def set_sensitivity_mask(self, mask: ProcedureSensitivityMask) -> None:
        self.meta["sensitivity"] = mask

    def set_menu_label(self, label: str) -> None:
        self.meta["menu_label"] = label

    def add_menu_path(self, path: str) -> None:
        if not path.startswith("<Image>/"):
            raise ValueError(f"menu path {path!r} must start with <Image>/")
        self.meta["menu_paths"].append(path)

    def set_documentation(self, blurb: str, help: str | None, help_id: str | None) -> None:
        self.meta["documentation"] = (blurb, help, help_id)

    def set_attribution(self, authors: str, copyright: str, date: str) -> None:
        self.meta["attribution"] = (authors, copyright, date)

    def _add(self, arg: _Arg) -> None:
        if arg.name in self.args or arg.name in ("run-mode", "image", "drawables"):
            raise ValueError(f"argument {arg.name!r} exists already")
        if not arg.name.replace("-", "").isalnum() or arg.name != arg.name.lower():
            raise ValueError(f"{arg.name!r} is not a valid GParamSpec name")
        self.args[arg.name] = arg

    def add_string_argument(self, name: str, nick: str, blurb: str | None, value: str,
                            flags: Any) -> None:
        self._add(_Arg("string", name, nick, blurb, value))

    def add_double_argument(self, name: str, nick: str, blurb: str | None, min: float,
                            max: float, value: float, flags: Any) -> None:
        if not min <= value <= max:
            raise ValueError(f"default {value} of {name!r} outside [{min}, {max}]")
        self._add(_Arg("double", name, nick, blurb, float(value), min, max))

    def add_boolean_argument(self, name: str, nick: str, blurb: str | None, value: bool,
                             flags: Any) -> None:
        self._add(_Arg("boolean", name, nick, blurb, bool(value)))

    def create_config(self) -> ProcedureConfig:
        return ProcedureConfig(self)

    def new_return_values(self, status: PDBStatusType, error: Error | None) -> ValueArray:
        if not isinstance(status, PDBStatusType):
            raise TypeError("status must be a Gimp.PDBStatusType")
        if error is not None and not isinstance(error, Error):
            raise TypeError("error must be a GLib.Error")
        return ValueArray([status] if error is None else [status, error])


class ImageProcedure(Procedure):
    pass


class ProcedureConfig:
    def __init__(self, procedure: Procedure) -> None:
        self.procedure = procedure
        self.values = {name: arg.default for name, arg in procedure.args.items()}

    def get_property(self, name: str) -> Any:
        if name not in self.values:
            raise TypeError(f"object of type 'GimpProcedureConfig' does not have property "
                            f"'{name}'")
        return self.values[name]

    def set_property(self, name: str, value: Any) -> None:
        arg = self.procedure.args.get(name)
        if arg is None:
            raise TypeError(f"object of type 'GimpProcedureConfig' does not have property "
                            f"'{name}'")
        if arg.kind == "double":
            value = float(value)
            if not arg.low <= value <= arg.high:
                # GObject clamps nothing: it warns and keeps the old value.
                LOG.append(("warning", f"value {value} of {name} out of range"))
                return
        elif arg.kind == "string":
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a string")
        elif arg.kind == "boolean":
            value = bool(value)
        self.values[name] = value


# -- images, layers, selection -----------------------------------------------------------

class Item:
    def __init__(self, image: Image, name: str) -> None:
        self.image = image
        self.name = name

    def get_name(self) -> str:
        return self.name

    def is_group(self) -> bool:
        return False

    def is_layer(self) -> bool:
        return False

    def get_image(self) -> Image:
        return self.image


class Drawable(Item):
    def __init__(self, image: Image, name: str, width: int, height: int) -> None:
        super().__init__(image, name)
        self.buffer = Gegl.Buffer(width, height)
        self.offsets = (0, 0)
        self.shadow: Gegl.Buffer | None = None
        self.updates: list[tuple[int, int, int, int]] = []

    def get_width(self) -> int:
        return self.buffer.width

    def get_height(self) -> int:
        return self.buffer.height

    def get_offsets(self) -> tuple[bool, int, int]:
        return True, self.offsets[0], self.offsets[1]

    def get_buffer(self) -> Gegl.Buffer:
        return self.buffer

    def get_shadow_buffer(self) -> Gegl.Buffer:
        # GIMP's shadow buffer has the drawable's size; its content is not the image's.
        if self.shadow is None or (self.shadow.width, self.shadow.height) != (
                self.get_width(), self.get_height()):
            self.shadow = Gegl.Buffer(self.get_width(), self.get_height())
        return self.shadow

    def _selection_here(self) -> np.ndarray | None:
        """The selection over this drawable (h, w) in 0..1, None when nothing is selected."""
        sel = self.image.selection
        if sel.is_empty():
            return None
        ox, oy = self.offsets
        mask = np.zeros((self.get_height(), self.get_width()), np.float32)
        h, w = sel.data.shape
        x0, y0 = max(0, ox), max(0, oy)
        x1, y1 = min(w, ox + self.get_width()), min(h, oy + self.get_height())
        if x1 > x0 and y1 > y0:
            mask[y0 - oy:y1 - oy, x0 - ox:x1 - ox] = sel.data[y0:y1, x0:x1]
        return mask

    def mask_intersect(self) -> tuple[bool, int, int, int, int]:
        mask = self._selection_here()
        if mask is None:
            return True, 0, 0, self.get_width(), self.get_height()
        ys, xs = np.nonzero(mask > 0)
        if len(xs) == 0:
            return False, 0, 0, 0, 0
        x0, y0 = int(xs.min()), int(ys.min())
        return True, x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1

    def merge_shadow(self, undo: bool) -> bool:
        if self.shadow is None:
            raise RuntimeError("merge_shadow without a shadow buffer")
        ok, x, y, w, h = self.mask_intersect()
        if not ok:
            return True
        if undo:
            self.image._push_undo("merge shadow")
        mask = self._selection_here()
        region = (slice(y, y + h), slice(x, x + w))
        src = self.shadow.data[region]
        dst = self.buffer.data[region]
        if mask is None:
            self.buffer.data[region] = src
        else:
            m = mask[region][..., None]
            self.buffer.data[region] = dst * (1.0 - m) + src * m
        self.image.dirty += 1
        return True

    def update(self, x: int, y: int, width: int, height: int) -> bool:
        self.updates.append((x, y, width, height))
        return True

    def has_alpha(self) -> bool:
        return True


class Layer(Drawable):
    @classmethod
    def new(cls, image: Image, name: str, width: int, height: int, type: ImageType,
            opacity: float, mode: LayerMode) -> Layer:
        return cls(image, name, width, height)

    def is_layer(self) -> bool:
        return True


class GroupLayer(Layer):
    def is_group(self) -> bool:
        return True


class Channel(Drawable):
    pass


class Selection:
    def __init__(self, width: int, height: int) -> None:
        self.data = np.zeros((height, width), np.float32)

    def is_empty(self) -> bool:
        return not bool((self.data > 0).any())

    def get_buffer(self) -> Gegl.Buffer:
        buf = Gegl.Buffer(self.data.shape[1], self.data.shape[0])
        buf.data[..., 0] = buf.data[..., 1] = buf.data[..., 2] = self.data
        buf.data[..., 3] = 1.0
        return buf


def _resize_linear(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Linear resampling on pixel centres, separably (rows, then columns)."""
    def axis(n_out: int, n_in: int) -> np.ndarray:
        return np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)

    ys, xs = axis(height, plane.shape[0]), axis(width, plane.shape[1])
    rows = np.stack([np.interp(ys, np.arange(plane.shape[0]), plane[:, j])
                     for j in range(plane.shape[1])], axis=1)
    return np.stack([np.interp(xs, np.arange(plane.shape[1]), rows[i])
                     for i in range(height)], axis=0).astype(np.float32)


class Image:
    def __init__(self, width: int, height: int, base_type: ImageBaseType) -> None:
        self.width, self.height, self.base_type = width, height, base_type
        self.precision = Precision.U8_NON_LINEAR
        self.layers: list[Layer] = []
        self.selection = Selection(width, height)
        self.undo_stack: list[dict[str, Any]] = []
        self.group_depth = 0
        self.groups_opened = 0
        self.groups_closed = 0
        self._group_has_step = False
        self.dirty = 0
        self.scaled_with: list[InterpolationType] = []

    @classmethod
    def new(cls, width: int, height: int, base_type: ImageBaseType) -> Image:
        return cls(width, height, base_type)

    def get_width(self) -> int:
        return self.width

    def get_height(self) -> int:
        return self.height

    def get_base_type(self) -> ImageBaseType:
        return self.base_type

    def get_precision(self) -> Precision:
        return self.precision

    def get_selection(self) -> Selection:
        return self.selection

    def insert_layer(self, layer: Layer, parent: Any, position: int) -> bool:
        self.layers.insert(position, layer)
        return True

    def is_dirty(self) -> bool:
        return self.dirty > 0

    def select_rectangle(self, operation: ChannelOps, x: int, y: int, width: int,
                         height: int) -> bool:
        if operation == ChannelOps.REPLACE:
            self.selection.data[:] = 0.0
        x0, y0 = max(0, x), max(0, y)
        self.selection.data[y0:y + height, x0:x + width] = 1.0
        return True

    # -- undo (the fake's model of GIMP's undo stack) --

    def _snapshot(self) -> dict[str, Any]:
        return {"size": (self.width, self.height),
                "selection": self.selection.data.copy(),
                "layers": [(layer, layer.buffer.data.copy(), layer.offsets)
                           for layer in self.layers]}

    def _push_undo(self, what: str) -> None:
        if self.group_depth > 0 and self._group_has_step:
            return  # the group's first step already holds the state before the group
        self.undo_stack.append(self._snapshot() | {"what": what})
        self._group_has_step = self.group_depth > 0

    def undo_group_start(self) -> bool:
        if self.group_depth == 0:
            self._group_has_step = False
        self.group_depth += 1
        self.groups_opened += 1
        return True

    def undo_group_end(self) -> bool:
        if self.group_depth == 0:
            raise RuntimeError("undo_group_end without undo_group_start")
        self.group_depth -= 1
        self.groups_closed += 1
        return True

    def undo(self) -> None:
        """Test helper: what Edit ▸ Undo does with the last step (or group)."""
        if self.group_depth:
            raise RuntimeError("undo while an undo group is open")
        state = self.undo_stack.pop()
        self.width, self.height = state["size"]
        self.selection.data = state["selection"]
        for layer, data, offsets in state["layers"]:
            layer.buffer.data = data
            layer.offsets = offsets

    def scale(self, new_width: int, new_height: int) -> bool:
        """Every layer and the selection, by the context's interpolation (nearest here:
        the fake only needs sizes and placement right)."""
        self._push_undo("scale image")
        fx, fy = new_width / self.width, new_height / self.height
        self.scaled_with.append(_context[-1]["interpolation"])
        for layer in self.layers:
            h, w = layer.get_height(), layer.get_width()
            nh, nw = int(round(h * fy)), int(round(w * fx))
            ys = np.minimum((np.arange(nh) / fy).astype(int), h - 1)
            xs = np.minimum((np.arange(nw) / fx).astype(int), w - 1)
            layer.buffer.data = layer.buffer.data[ys][:, xs].copy()
            layer.offsets = (int(round(layer.offsets[0] * fx)),
                             int(round(layer.offsets[1] * fy)))
        # The selection is resampled like GIMP does it: a hard edge comes out soft.
        self.selection.data = _resize_linear(self.selection.data, new_height, new_width)
        self.width, self.height = new_width, new_height
        self.dirty += 1
        return True

    def undo_group_balanced(self) -> bool:
        return self.group_depth == 0 and self.groups_opened == self.groups_closed
