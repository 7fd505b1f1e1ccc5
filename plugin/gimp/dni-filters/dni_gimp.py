"""The GIMP half of the DNI filters: read the pixels, run the job, write them back.

Thin by design: options, presets, request rules, messages and the backend session come
from `dni_client`; this module only speaks libgimp/GEGL. Nothing is written to the image
before the backend's answer has been checked, and then everything goes through GIMP's
shadow buffer and `merge_shadow` inside one undo group, so one Edit ▸ Undo restores the
user's pixels (super-resolution's image resize included). `merge_shadow` also applies the
selection (soft edges included), exactly as GIMP's own filters do.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import zmq  # noqa: F401  (missing pyzmq: the entry point explains what to do)
from dni_gimp_paths import HERE, INSTALLER
from gi.repository import Gegl, Gimp

from dni_client import auto, filters, launcher
from dni_client import pixels as px
from dni_client.errors import FilterError, MixError
from dni_client.families import FamilyInfo, family_named
from dni_client.geometry import DEFAULT_PADDING, Rect, cut
from dni_client.job import Amount, JobSpec
from dni_client.messages import progress_text
from dni_client.mix_state import resolve
from dni_client.presets import PresetStore
from dni_client.session import Session
from dni_client.settings import BACKEND_RECORD, BackendSettings, read_json

ENDPOINT_ENV = "DNI_GIMP_ENDPOINT"  # tests and scripts
ESTIMATE_SIDE = 512  # px: the Auto button measures at most this square of the layer


class CallingError(FilterError):
    """The caller's arguments are wrong (layers, family, strength, weights, preset)."""


# -- settings and the backend ------------------------------------------------------------

def load_settings() -> BackendSettings:
    """The installer's backend.json next to the plug-in, the user's dni/settings.json in
    GIMP's profile, and DNI_GIMP_ENDPOINT."""
    config_dir = os.path.join(str(Gimp.directory()), "dni")
    user = read_json(os.path.join(config_dir, "settings.json"))
    return BackendSettings.merged(config_dir, read_json(os.path.join(HERE, BACKEND_RECORD)),
                                  user, os.environ.get(ENDPOINT_ENV))


def new_session(settings: BackendSettings) -> Session:
    """GIMP starts a new plug-in process for every filter call: a backend it starts is
    detached, so that the next call finds the networks loaded (its pid goes next to its
    log, so the user and the tests can stop it)."""
    backend = functools.partial(launcher.Backend,
                                pid_path=os.path.join(settings.config_dir, "backend.pid"))
    return Session(settings, installer=INSTALLER, backend_factory=backend,
                   detached_backend=True)


class Progress:
    """GIMP's progress bar. GIMP's Cancel button ends this plug-in's process; the backend
    then drops the job on its own (it notices the vanished client), and since nothing is
    written before the job is done, the image is untouched."""

    def __init__(self, text: str) -> None:
        Gimp.progress_init(text)
        self.fraction = 0.0
        self._stage = ""

    def text(self, text: str) -> None:
        Gimp.progress_set_text(text)

    def update(self, fraction: float) -> None:
        self.fraction = min(max(float(fraction), 0.0), 1.0)
        Gimp.progress_update(self.fraction)

    def stage(self, title: str, stage: str) -> None:
        if stage != self._stage:
            self._stage = stage
            self.text(progress_text(title, stage))

    def pulse(self) -> None:
        Gimp.progress_pulse()

    def end(self) -> None:
        Gimp.progress_end()


def connect(session: Session, progress: Progress | None = None) -> None:
    """Reach the backend, starting it if needed (the progress bar pulses meanwhile)."""
    if progress is None:
        session.wait_connected()
        return
    progress.text("DNI: connecting (the first start of the backend takes a while)...")
    last = 0.0

    def pulse() -> None:  # each pulse is a call into GIMP: a few a second is plenty
        nonlocal last
        if time.monotonic() - last >= 0.2:
            last = time.monotonic()
            progress.pulse()

    session.wait_connected(pump=pulse)


# -- pixels ------------------------------------------------------------------------------

# The babl format each precision travels in: 8 and 16-bit integers and half floats as they
# are, the rest (float, double, 32-bit integers) as 32-bit float. Always perceptual
# (R'G'B'): the networks were trained on sRGB-encoded values, and GEGL converts linear and
# greyscale images both ways.
_TRANSPORT = {"U8": "R'G'B'A u8", "U16": "R'G'B'A u16", "HALF": "R'G'B'A half"}
_FLOAT = "R'G'B'A float"


def pixel_format(image: Any) -> px.PixelFormat:
    precision = image.get_precision()
    for prefix, babl in _TRANSPORT.items():
        for curve in ("LINEAR", "NON_LINEAR", "PERCEPTUAL"):
            if precision == getattr(Gimp.Precision, f"{prefix}_{curve}", None):
                return px.GIMP_FORMATS[babl]
    return px.GIMP_FORMATS[_FLOAT]


def check_target(image: Any, drawables: Sequence[Any]) -> Any:
    """The one layer to filter; CallingError with the fix for anything else."""
    if image is None:
        raise CallingError("Open an image first.")
    if len(drawables) != 1:
        raise CallingError(f"DNI filters one layer at a time; {len(drawables)} are selected. "
                           "Click a single layer in the Layers dialog.")
    drawable = drawables[0]
    if drawable.is_group():
        raise CallingError(f"'{drawable.get_name()}' is a layer group. Select one of the "
                           "layers inside it.")
    if not drawable.is_layer():
        raise CallingError(f"'{drawable.get_name()}' is a mask or channel. Select a layer.")
    if image.get_base_type() == Gimp.ImageBaseType.INDEXED:
        raise CallingError("DNI does not work on indexed images. Use Image ▸ Mode ▸ RGB.")
    return drawable


def target_area(drawable: Any, padding: int) -> tuple[Rect, Rect]:
    """(core, crop) in the drawable's coordinates: core is the part the selection covers
    (all of the layer without one); crop adds context for the network at the edges."""
    ok, x, y, width, height = drawable.mask_intersect()
    if not ok or width <= 0 or height <= 0:
        raise FilterError("The selection does not touch this layer: nothing to filter. "
                          "Select part of the layer, or Select ▸ None.")
    core = Rect(int(x), int(y), int(width), int(height))
    bounds = Rect(0, 0, int(drawable.get_width()), int(drawable.get_height()))
    return core, core.padded(padding, bounds)


def read_pixels(drawable: Any, rect: Rect, fmt: px.PixelFormat) -> bytes:
    buffer = drawable.get_buffer()
    data = bytes(buffer.get(Gegl.Rectangle.new(*rect), 1.0, fmt.depth, Gegl.AbyssPolicy.CLAMP))
    px.check_bytes(data, rect.width, rect.height, fmt.bytes_per_pixel, "layer pixels")
    return data


class GimpJob(NamedTuple):
    image: Any
    drawable: Any
    spec: JobSpec
    core: Rect
    image_size: tuple[int, int]


def prepare(image: Any, drawables: Sequence[Any], family: FamilyInfo, amount: Amount, *,
            mode: str = "network", padding: int = DEFAULT_PADDING,
            tile: int | None = None, auto_map: bool = False) -> GimpJob:
    """The job for the selected part of the layer; `auto_map`: the backend reads a
    strength map off the pixels (dni_client.auto) instead of using `amount`."""
    drawable = check_target(image, drawables)
    if mode not in ("network", "pixel"):
        raise CallingError(f"mode must be 'network' or 'pixel', not {mode!r}")
    core, crop = target_area(drawable, padding)
    fmt = pixel_format(image)
    spec = JobSpec(family, crop, fmt, read_pixels(drawable, crop, fmt), amount, mode,
                   tile=tile)
    if auto_map:
        spec = auto.auto_spec(spec, per_region=True)
    return GimpJob(image, drawable, spec, core,
                   (int(image.get_width()), int(image.get_height())))


def run_job(session: Session, job: GimpJob, progress: Progress | None,
            should_cancel: Callable[[], bool] | None = None) -> bytes:
    """Run the job on the backend; returns the result's pixels (checked)."""
    title = job.spec.family.title

    def on_progress(fraction: float, stage: str) -> bool:
        if progress is not None:
            progress.stage(title, stage)
            progress.update(fraction)
        return bool(should_cancel and should_cancel())

    result = session.run(job.spec, on_progress=on_progress)
    return job.spec.checked_pixels(result.width, result.height, result.layout,
                                   result.pixels)


def _enlarge(job: GimpJob, place: Rect) -> Rect:
    """Super-resolution: the whole image enlarged by interpolation (other layers,
    unselected parts); returns where the network's pixels go."""
    s, (width, height) = job.spec.scale, job.image_size
    Gimp.context_push()
    try:
        Gimp.context_set_interpolation(Gimp.InterpolationType.CUBIC)
        job.image.scale(width * s, height * s)
    finally:
        Gimp.context_pop()
    # The enlarged selection has soft edges a few pixels beyond core x s: cover them too
    # (from the padding), or merge_shadow would blend in empty pixels.
    ok, x, y, w, h = job.drawable.mask_intersect()
    return Rect(int(x), int(y), int(w), int(h)).intersect(job.spec.crop.scaled(s)) if ok \
        else place


def write_result(job: GimpJob, data: bytes) -> Rect:
    """Put the result into the layer, undoably; returns the rectangle written (layer
    coordinates, after any enlargement). Only the selected part goes back: the padding
    was context for the network, and merge_shadow applies the selection's shape."""
    image, drawable, spec, s = job.image, job.drawable, job.spec, job.spec.scale
    if (int(image.get_width()), int(image.get_height())) != job.image_size:
        raise FilterError("The image was resized while DNI was working; nothing was "
                          "changed. Run the filter again.")
    place = job.core.scaled(s)
    image.undo_group_start()
    try:
        if s > 1:
            place = _enlarge(job, place)
        inside = Rect(place.x - spec.crop.x * s, place.y - spec.crop.y * s, place.width,
                      place.height)
        pixels = cut(data, spec.fmt.bytes_per_pixel, spec.crop.width * s,
                     spec.crop.height * s, inside)
        shadow = drawable.get_shadow_buffer()
        shadow.set(Gegl.Rectangle.new(*place), spec.fmt.depth, pixels)
        shadow.flush()
        drawable.merge_shadow(True)
        drawable.update(*place)
    finally:
        image.undo_group_end()
    Gimp.displays_flush()
    return place


def apply(image: Any, drawables: Sequence[Any], session: Session, family: FamilyInfo,
          amount: Amount, *, mode: str = "network", progress: Progress | None = None,
          tile: int | None = None, should_cancel: Callable[[], bool] | None = None,
          auto_map: bool = False) -> Rect:
    """Filter the selected part of the layer: read, run, check, write (undoable).
    `should_cancel` is asked at every progress report (scripts; in GIMP's UI the
    progress bar's Cancel ends the plug-in process instead)."""
    job = prepare(image, drawables, family, amount, mode=mode, tile=tile, auto_map=auto_map)
    return write_result(job, run_job(session, job, progress, should_cancel))


def estimate_strength(image: Any, drawables: Sequence[Any], session: Session,
                      family: FamilyInfo) -> tuple[float, str]:
    """The Auto button: (strength, what the backend found) for the centre of the area
    the filter would change, at most ESTIMATE_SIDE px square (the backend denoises it
    to answer, so a whole large layer would keep the dialog waiting)."""
    auto.check_family(family)
    drawable = check_target(image, drawables)
    _core, crop = target_area(drawable, 0)
    side_w, side_h = min(crop.width, ESTIMATE_SIDE), min(crop.height, ESTIMATE_SIDE)
    centre = Rect(crop.x + (crop.width - side_w) // 2, crop.y + (crop.height - side_h) // 2,
                  side_w, side_h)
    fmt = pixel_format(image)
    spec = JobSpec(family, centre, fmt, read_pixels(drawable, centre, fmt), Amount(0.5, None))
    return auto.estimate_strength(session, spec)


def options_from_config(get: Callable[[str], Any], entry: filters.Filter,
                        families: Sequence[FamilyInfo], settings: BackendSettings
                        ) -> tuple[FamilyInfo, Amount]:
    """Family and strength/weights from the procedure's arguments, as the dialog left
    them or a script gave them (`get` is config.get_property)."""
    name = str(get("family") or "")
    if not name:
        default = filters.default_family(entry, families)
        if default is None:
            raise CallingError(f"The DNI backend has no {entry.title} family installed; "
                               "see docs/gimp.md (Troubleshooting).")
        name = default.name
    try:
        family = family_named(families, name)
        preset = str(get("preset") or "") or None
        store = PresetStore(settings.presets_path) if preset else None
        amount = resolve(family, strength=float(get("strength")),
                         weights=str(get("weights") or ""), preset=preset, store=store)
    except (FilterError, MixError) as exc:
        raise CallingError(str(exc)) from None
    return family, amount


def log(message: str) -> None:
    """For batch mode: GIMP shows plug-ins' stderr on its console."""
    print(f"dni-filters: {message}", file=sys.stderr)
