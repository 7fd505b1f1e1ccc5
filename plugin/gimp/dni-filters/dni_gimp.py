"""The GIMP half of the DNI filters: read the pixels, run the job, write them back.

Thin by design: options, presets, request rules and the client come from `dni_client`;
this module only speaks libgimp/GEGL. Nothing is written to the image before the backend's
answer has been checked, and then everything goes through GIMP's shadow buffer and
`merge_shadow` inside one undo group, so one Edit ▸ Undo restores the user's pixels
(super-resolution's image resize included). `merge_shadow` also applies the selection
(soft edges included), exactly as GIMP's own filters do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from dni_gimp_menus import PROCEDURES, FilterSpec  # noqa: F401  (re-exported)
from gi.repository import Gegl, Gimp

from dni_client import filter_options as fo
from dni_client import launcher
from dni_client import requests as rq
from dni_client.requests import Rect, RequestError

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
BACKEND_FILE = os.path.join(PLUGIN_DIR, launcher.SETTINGS_NAME)
ENDPOINT_ENV = "DNI_GIMP_ENDPOINT"


class FilterError(Exception):
    """Something to tell the user; nothing in the image has changed."""


class CallingError(FilterError):
    """The caller's arguments are wrong (layers, family, strength, weights, preset)."""


class Cancelled(Exception):
    """The job was cancelled; nothing in the image has changed."""


# -- settings --------------------------------------------------------------------------

class Settings:
    """Where the backend is: GIMP's profile (dni/settings.json, the user's), the
    installer's backend.json next to the plug-in, and DNI_GIMP_ENDPOINT (tests, scripts)."""

    def __init__(self, config_dir: str, installed: dict[str, Any],
                 user: dict[str, Any]) -> None:
        self.config_dir = config_dir
        merged = dict(installed)
        merged.update({k: v for k, v in user.items() if v not in (None, "", [])})
        self.endpoint = str(os.environ.get(ENDPOINT_ENV) or merged.get("endpoint")
                            or launcher.DEFAULT_ENDPOINT)
        self.autostart = bool(merged.get("autostart", True))
        self.timeout = float(merged.get("timeout", 30.0))
        self.server_public_key = str(merged.get("server_public_key") or "")
        self.client_keys_dir = str(merged.get("client_keys_dir") or "")
        self.family_paths = [str(p) for p in merged.get("family_paths") or []]
        self.backend = merged

    @classmethod
    def load(cls) -> Settings:
        config_dir = os.path.join(str(Gimp.directory()), "dni")
        user = launcher.read_settings(os.path.join(config_dir, "settings.json"))
        return cls(config_dir, launcher.read_settings(BACKEND_FILE), user)

    @property
    def presets_path(self) -> str:
        return os.path.join(self.config_dir, "presets.json")

    @property
    def log_path(self) -> str:
        return os.path.join(self.config_dir, "backend.log")

    @property
    def pid_path(self) -> str:
        return os.path.join(self.config_dir, "backend.pid")


# -- progress ----------------------------------------------------------------------------

class Progress:
    """GIMP's progress bar. GIMP's Cancel button ends this plug-in's process; the backend
    then drops the job on its own (it notices the vanished client), and since nothing is
    written before the job is done, the image is untouched."""

    def __init__(self, text: str) -> None:
        Gimp.progress_init(text)
        self.fraction = 0.0

    def text(self, text: str) -> None:
        Gimp.progress_set_text(text)

    def update(self, fraction: float) -> None:
        self.fraction = min(max(float(fraction), 0.0), 1.0)
        Gimp.progress_update(self.fraction)

    def pulse(self) -> None:
        Gimp.progress_pulse()

    def end(self) -> None:
        Gimp.progress_end()


_STAGES = {"queued": "waiting for the backend", "started": "starting",
           "loading": "loading the networks",
           "blending": "blending the networks", "inference": "computing"}


def stage_text(title: str, stage: str) -> str:
    return f"DNI {title}: {_STAGES.get(stage, stage or 'working')}..."


# -- the backend -------------------------------------------------------------------------

def _start_detached(command: list[str], settings: Settings) -> subprocess.Popen:
    """Start `dni serve` so that it outlives this plug-in: GIMP starts a new plug-in
    process for every filter call, and the next call should find the networks loaded."""
    argv = launcher.serve_command(command, settings.endpoint, settings.family_paths)
    os.makedirs(settings.config_dir, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if os.name == "nt":
        # DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW
        kwargs["creationflags"] = 0x00000008 | 0x00000200 | 0x08000000
    else:
        kwargs["start_new_session"] = True
    with open(settings.log_path, "wb") as log:
        try:
            # close_fds: the child must not hold GIMP's pipes to this plug-in open.
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT,
                                     env=launcher.clean_environment(), close_fds=True,
                                     **kwargs)
        except OSError as exc:
            raise FilterError(f"The DNI backend command {argv[0]!r} could not be started "
                              f"({exc}). Run installers/install_gimp_plugin.py --backend "
                              "/path/to/dni.") from None
    try:  # so that the user (docs/gimp.md) and the tests can stop it
        with open(settings.pid_path, "w", encoding="ascii") as f:
            f.write(f"{child.pid}\n")
    except OSError:
        pass
    return child


def _log_tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def ensure_backend(settings: Settings, progress: Progress | None,
                   timeout: float = launcher.START_TIMEOUT) -> None:
    """Start the local backend if nothing listens at the endpoint yet."""
    try:
        endpoint = launcher.parse_endpoint(settings.endpoint)
    except launcher.LaunchError as exc:
        raise FilterError(str(exc)) from None
    if launcher.port_open(settings.endpoint):
        return
    if not endpoint.local or not settings.autostart:
        raise FilterError(f"No DNI backend answers at {settings.endpoint}. Start it with "
                          f"`dni serve --endpoint {settings.endpoint}`.")
    command = launcher.find_backend(settings.backend)
    if command is None:
        raise FilterError("The DNI backend (`dni`) was not found. Install it, then run "
                          "`python installers/install_gimp_plugin.py --backend "
                          "/path/to/dni`.")
    if progress is not None:
        progress.text("DNI: starting the backend (the first start takes a while)...")
    child = _start_detached(command, settings)
    deadline = time.monotonic() + timeout
    while not launcher.port_open(settings.endpoint):
        code = child.poll()
        if code is not None:
            raise FilterError(launcher.explain_failure(_log_tail(settings.log_path),
                                                       settings.endpoint, code))
        if time.monotonic() > deadline:
            raise FilterError(f"The DNI backend did not answer within {timeout:.0f} s; "
                              f"its log is {settings.log_path}.")
        if progress is not None:
            progress.pulse()
        time.sleep(0.2)


def connect(settings: Settings, progress: Progress | None = None) -> Any:
    """A connected `dni_client.Client` (the backend started if needed)."""
    try:
        from dni_client import Client, ClientError
    except ImportError as exc:
        import dni_gimp_paths

        raise FilterError(f"{dni_gimp_paths.missing_zmq_message()} ({exc})") from None
    ensure_backend(settings, progress)
    kwargs: dict[str, Any] = {"timeout": settings.timeout}
    if settings.server_public_key:
        kwargs["server_public_key"] = settings.server_public_key
        if settings.client_keys_dir:
            kwargs["client_keys_dir"] = settings.client_keys_dir
    try:
        client = Client(settings.endpoint, **kwargs)
        client.hello()
    except ClientError as exc:
        raise FilterError(f"The DNI backend at {settings.endpoint} did not answer "
                          f"properly: {exc}") from None
    return client


# -- pixels ------------------------------------------------------------------------------

# The babl format each precision travels in (dni_client.requests.GIMP_FORMATS maps them to
# protocol layouts): 8 and 16-bit integers and half floats as they are, the rest (float,
# double, 32-bit integers) as 32-bit float. Always perceptual (R'G'B'): the networks were
# trained on sRGB-encoded values, and GEGL converts linear and greyscale images both ways.
_TRANSPORT = {"U8": "R'G'B'A u8", "U16": "R'G'B'A u16", "HALF": "R'G'B'A half"}
_FLOAT = "R'G'B'A float"


def pixel_format(image: Any) -> rq.PixelFormat:
    precision = image.get_precision()
    for prefix, babl in _TRANSPORT.items():
        for curve in ("LINEAR", "NON_LINEAR", "PERCEPTUAL"):
            if precision == getattr(Gimp.Precision, f"{prefix}_{curve}", None):
                return rq.GIMP_FORMATS[babl]
    return rq.GIMP_FORMATS[_FLOAT]


def check_target(image: Any, drawables: Sequence[Any]) -> Any:
    """The one layer to filter; FilterError with the fix for anything else."""
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


def read_pixels(drawable: Any, rect: Rect, fmt: rq.PixelFormat) -> bytes:
    buffer = drawable.get_buffer()
    data = buffer.get(Gegl.Rectangle.new(*rect), 1.0, fmt.depth, Gegl.AbyssPolicy.CLAMP)
    data = bytes(data)
    rq.check_bytes(data, rect, fmt.bytes_per_pixel, "layer pixels")
    return data


class Job(NamedTuple):
    image: Any
    drawable: Any
    family: dict[str, Any]
    choice: fo.Choice
    fmt: rq.PixelFormat  # .depth is the babl format name
    core: Rect
    crop: Rect
    pixels: bytes
    image_size: tuple[int, int]
    mode: str
    tile: int | None = None  # the backend picks one when None

    @property
    def scale(self) -> int:
        return fo.scale_of(self.family)

    def submit_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(
            family=self.family["name"], width=self.crop.width, height=self.crop.height,
            layout=self.fmt.layout, pixels=self.pixels, mode=self.mode)
        if self.choice.weights is not None:
            kwargs["weights"] = list(self.choice.weights)
        else:
            kwargs["strength"] = self.choice.strength
        if self.tile is not None:
            kwargs["tile"] = self.tile
        return kwargs


def prepare(image: Any, drawables: Sequence[Any], family: dict[str, Any], choice: fo.Choice,
            *, mode: str = "network", padding: int = rq.DEFAULT_PADDING,
            tile: int | None = None) -> Job:
    drawable = check_target(image, drawables)
    if mode not in ("network", "pixel"):
        raise FilterError(f"mode must be 'network' or 'pixel', not {mode!r}")
    core, crop = target_area(drawable, padding)
    fmt = pixel_format(image)
    pixels = read_pixels(drawable, crop, fmt)
    return Job(image, drawable, family, choice, fmt, core, crop, pixels,
               (int(image.get_width()), int(image.get_height())), mode, tile)


def _error_message(code: str, message: str) -> str:
    hints = {
        "busy": "The DNI backend is busy with other jobs; try again in a moment.",
        "out_of_memory": "The backend ran out of memory even with small tiles; select a "
                         "smaller area.",
        "too_large": "The area is larger than the backend accepts; select a smaller area.",
        "connection_lost": "The DNI backend stopped answering (did it crash?); nothing was "
                           "changed.",
    }
    hint = hints.get(code)
    return f"{hint} ({message})" if hint else f"DNI: {message} [{code}]"


def run_job(client: Any, job: Job, progress: Progress | None, title: str,
            should_cancel: Callable[[], bool] | None = None) -> bytes:
    """Run the job on the backend; returns the result's pixels (checked)."""
    from dni_client import ClientError, ServerError

    last_stage = [""]

    def on_progress(fraction: float, stage: str) -> bool:
        if progress is not None:
            if stage != last_stage[0]:
                last_stage[0] = stage
                progress.text(stage_text(title, stage))
            progress.update(fraction)
        return bool(should_cancel and should_cancel())

    try:
        result = client.run(**job.submit_kwargs(), on_progress=on_progress)
    except ServerError as exc:
        if exc.code == "cancelled":
            raise Cancelled("DNI: cancelled; nothing was changed.") from None
        raise FilterError(_error_message(exc.code, exc.message)) from None
    except ClientError as exc:
        raise FilterError(_error_message("connection_lost", str(exc))) from None
    s = job.scale
    if (result.width, result.height) != (job.crop.width * s, job.crop.height * s):
        raise FilterError(f"The backend returned {result.width}x{result.height} pixels for a "
                          f"{job.crop.width}x{job.crop.height} area (scale {s}); nothing "
                          "was changed.")
    if result.layout != job.fmt.layout:
        raise FilterError(f"The backend returned {result.layout} pixels instead of "
                          f"{job.fmt.layout}; nothing was changed.")
    rq.check_bytes(result.pixels, Rect(0, 0, result.width, result.height),
                   job.fmt.bytes_per_pixel, "result")
    return result.pixels


def write_result(job: Job, data: bytes) -> Rect:
    """Put the result into the layer, undoably; returns the rectangle written (layer
    coordinates, after any enlargement). Only the selected part goes back: the padding
    was context for the network, and merge_shadow applies the selection's shape."""
    image, drawable, s = job.image, job.drawable, job.scale
    if (int(image.get_width()), int(image.get_height())) != job.image_size:
        raise FilterError("The image was resized while DNI was working; nothing was "
                          "changed. Run the filter again.")
    place = job.core.scaled(s)
    image.undo_group_start()
    try:
        if s > 1:
            width, height = job.image_size
            Gimp.context_push()
            try:
                # The rest of the image (other layers, unselected parts) is enlarged by
                # interpolation; the network's pixels then replace the selected part.
                Gimp.context_set_interpolation(Gimp.InterpolationType.CUBIC)
                image.scale(width * s, height * s)
            finally:
                Gimp.context_pop()
            # The enlarged selection has soft edges a few pixels beyond core x s: cover
            # them too (from the padding), or merge_shadow would blend in empty pixels.
            ok, x, y, w, h = drawable.mask_intersect()
            if ok:
                place = Rect(int(x), int(y), int(w), int(h)).intersect(job.crop.scaled(s))
        inside = Rect(place.x - job.crop.x * s, place.y - job.crop.y * s, place.width,
                      place.height)
        pixels = fo.cut(data, job.fmt.bytes_per_pixel, job.crop.width * s,
                        job.crop.height * s, inside)
        shadow = drawable.get_shadow_buffer()
        shadow.set(Gegl.Rectangle.new(*place), job.fmt.depth, pixels)
        shadow.flush()
        drawable.merge_shadow(True)
        drawable.update(*place)
    finally:
        image.undo_group_end()
    Gimp.displays_flush()
    return place


def apply(image: Any, drawables: Sequence[Any], client: Any, family: dict[str, Any],
          choice: fo.Choice, *, mode: str = "network", title: str = "",
          progress: Progress | None = None, tile: int | None = None,
          should_cancel: Callable[[], bool] | None = None) -> Rect:
    """Filter the selected part of the layer: read, run, check, write (undoable).
    `should_cancel` is asked at every progress report (scripts; in GIMP's UI the
    progress bar's Cancel ends the plug-in process instead)."""
    try:
        job = prepare(image, drawables, family, choice, mode=mode, tile=tile)
    except RequestError as exc:
        raise FilterError(str(exc)) from None
    data = run_job(client, job, progress, title or str(family.get("title") or "filter"),
                   should_cancel)
    return write_result(job, data)


def options_from_config(get: Callable[[str], Any], spec: FilterSpec,
                        families: Sequence[dict[str, Any]], settings: Settings
                        ) -> tuple[dict[str, Any], fo.Choice]:
    """Family and strength/weights from the procedure's arguments, as the dialog left
    them or a script gave them (`get` is config.get_property)."""
    from dni_client.presets import PresetStore

    name = str(get("family") or "") or fo.default_family(families, spec.task)
    if not name:
        raise CallingError(f"The DNI backend has no {spec.task} family installed; "
                          "see docs/gimp.md (Troubleshooting).")
    try:
        family = fo.family_named(families, name)
        preset = str(get("preset") or "") or None
        store = PresetStore(settings.presets_path) if preset else None
        choice = fo.resolve(family, strength=float(get("strength")),
                            weights=str(get("weights") or ""), preset=preset, store=store)
    except RequestError as exc:
        raise CallingError(str(exc)) from None
    return family, choice


def log(message: str) -> None:
    """For batch mode: GIMP shows plug-ins' stderr on its console."""
    print(f"dni-filters: {message}", file=sys.stderr)
