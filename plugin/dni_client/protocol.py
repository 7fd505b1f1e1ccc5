"""The DNI wire protocol, shared by the server (`dni serve`) and the editor client.

Pure Python, 3.8-compatible and free of numpy: the client imports it inside Krita's and
GIMP's own interpreters. docs/protocol.md describes every message; this module holds the
constants and the frame encoding, so that both ends agree by construction.

A message is a ZeroMQ multipart message::

    [b"", header, *data]

`b""` is the envelope delimiter (routers and brokers put routing ids before it), `header`
is one UTF-8 JSON object, and each `data` frame is raw bytes (pixels, mask, strength
map): never base64 or PNG, so that large images cost one memory copy at most.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

PROTOCOL_VERSION = 1
DEFAULT_PORT = 5557
DEFAULT_ENDPOINT = f"tcp://127.0.0.1:{DEFAULT_PORT}"

# Client -> server operations.
OP_HELLO = "hello"
OP_FAMILIES = "families"
OP_RUN = "run"
OP_CANCEL = "cancel"
OP_PING = "ping"
OP_STATS = "stats"
OP_CATALOGUE = "catalogue"  # the families the backend can download
OP_INSTALL = "install"      # download one: progress events, then `installed` or an error
OPS = (OP_HELLO, OP_FAMILIES, OP_RUN, OP_CANCEL, OP_PING, OP_STATS, OP_CATALOGUE, OP_INSTALL)

# Server -> client kinds. Every request gets exactly one terminal reply; a run gets any
# number of `progress` events first.
KIND_HELLO = "hello"
KIND_FAMILIES = "families"
KIND_PROGRESS = "progress"
KIND_RESULT = "result"
KIND_ERROR = "error"
KIND_CANCEL_ACK = "cancel_ack"
KIND_PONG = "pong"
KIND_STATS = "stats"
KIND_CATALOGUE = "catalogue"
KIND_INSTALLED = "installed"
TERMINAL_KINDS = (KIND_HELLO, KIND_FAMILIES, KIND_RESULT, KIND_ERROR, KIND_CANCEL_ACK,
                  KIND_PONG, KIND_STATS, KIND_CATALOGUE, KIND_INSTALLED)

# Names of the optional data frames of a `run`, in the order they may appear.
FRAME_PIXELS = "pixels"
FRAME_MASK = "mask"
FRAME_STRENGTH_MAP = "strength_map"
RUN_FRAMES = (FRAME_PIXELS, FRAME_MASK, FRAME_STRENGTH_MAP)

MODES = ("network", "pixel")

# A run's "strength" (or "strength_map", instead of its frame) set to this: the server reads
# the strength off the pixels, for families whose axis says what it measures; the result
# header's "auto" says what it found (docs/protocol.md).
AUTO = "auto"

# Error codes. The engine's own codes (dni.errors) pass through unchanged.
ERROR_CODES = {
    "bad_message": "the message is not [b'', header, frames...] or the header is not JSON",
    "bad_header": "a header field is missing, of the wrong type or out of range",
    "unsupported_version": "the header's protocol version is not one the server speaks",
    "unknown_op": "the op is not one of " + ", ".join(OPS),
    "too_large": "header, message size, frame count, image or output size exceed the limits",
    "bad_frames": "data frames missing, extra, or of a size that does not match the header",
    "bad_layout": "the pixel layout is unknown",
    "busy": "the server's queue (or this client's share of it) is full",
    "duplicate_id": "a run reused the id of this client's queued or running job (which goes on)",
    "superseded": "a newer preview from the same client replaced this queued one",
    "cancelled": "the job was cancelled",
    "shutting_down": "the server is stopping",
    "out_of_memory": "the device ran out of memory even with the smallest tile",
    "internal": "an unexpected server error (the server keeps running)",
    # from dni.errors:
    "error": "the engine refused the input",
    "bad_family": "the family is unknown or broken",
    "bad_weights": "strength or weights are not acceptable",
    "incompatible": "the family's members cannot be interpolated",
    "bad_image": "the image, mask or strength map is unusable",
    # client side only:
    "connection_lost": "no sign of the job within the timeout, or the server lost it",
}

# Default limits; the server reports the ones it enforces in `hello`.
MAX_HEADER_BYTES = 64 * 1024
MAX_FRAMES = 1 + len(RUN_FRAMES)         # header + data frames (after the delimiter)
MAX_ENVELOPE = 8                         # routing-id frames before the delimiter
MAX_SIDE = 16384
MAX_PIXELS = 8192 * 8192
MAX_WEIGHTS = 64
# Use fullmatch: with re.match, "$" also matches before a trailing newline.
JOB_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_PING_JOBS = 64                       # job ids one ping may ask about

# Liveness (docs/protocol.md, "Liveness"): the server repeats a job's latest progress
# (marked "alive") whenever the job's client has heard nothing about it for this long,
# so that a client can tell a long tile from a job that no longer exists.
ALIVE_INTERVAL_S = 1.0

# Pixel layouts: name -> (channels, bytes per channel, sample type, channel order).
# Sample types: "u8", "u16", "f16", "f32"; multi-byte samples are little-endian (every
# platform Krita and GIMP ship on). Order is how channels sit in memory for one pixel.
LAYOUTS = {
    "rgba8": (4, 1, "u8", "RGBA"),       # GIMP "R'G'B'A u8"
    "bgra8": (4, 1, "u8", "BGRA"),       # Krita RGBA/U8 (QImage ARGB32 on little-endian)
    "rgb8": (3, 1, "u8", "RGB"),         # GIMP "R'G'B' u8"
    "grey8": (1, 1, "u8", "Y"),          # GIMP "Y' u8"
    "rgba16": (4, 2, "u16", "RGBA"),
    "bgra16": (4, 2, "u16", "BGRA"),     # Krita RGBA/U16
    "rgb16": (3, 2, "u16", "RGB"),
    "grey16": (1, 2, "u16", "Y"),
    "rgba16f": (4, 2, "f16", "RGBA"),    # Krita RGBA/F16
    "rgb16f": (3, 2, "f16", "RGB"),
    "rgba32f": (4, 4, "f32", "RGBA"),    # Krita RGBA/F32, GIMP "R'G'B'A float"
    "rgb32f": (3, 4, "f32", "RGB"),      # GIMP "R'G'B' float"
    "grey32f": (1, 4, "f32", "Y"),       # GIMP "Y' float"
}

# The editors' own names for their layouts.
LAYOUT_ALIASES = {
    "krita:U8": "bgra8",
    "krita:U16": "bgra16",
    "krita:F16": "rgba16f",
    "krita:F32": "rgba32f",
    "R'G'B'A u8": "rgba8",
    "R'G'B'A u16": "rgba16",
    "R'G'B'A half": "rgba16f",
    "R'G'B'A float": "rgba32f",
    "R'G'B' u8": "rgb8",
    "R'G'B' u16": "rgb16",
    "R'G'B' half": "rgb16f",
    "R'G'B' float": "rgb32f",
    "Y' u8": "grey8",
    "Y u8": "grey8",
    "Y' u16": "grey16",
    "Y' float": "grey32f",
}


class ProtocolError(Exception):
    """A message that breaks the protocol; `code` is one of ERROR_CODES."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def canonical_layout(name: object) -> str:
    """The canonical layout name for a name or an editor alias; ProtocolError if unknown."""
    if isinstance(name, str):
        if name in LAYOUTS:
            return name
        alias = LAYOUT_ALIASES.get(name)
        if alias is not None:
            return alias
    known = ", ".join(sorted(LAYOUTS)) + "; or " + ", ".join(repr(a) for a in LAYOUT_ALIASES)
    raise ProtocolError("bad_layout", f"unknown pixel layout {name!r} (known: {known})")


def bytes_per_pixel(layout: str) -> int:
    channels, size, _, _ = LAYOUTS[canonical_layout(layout)]
    return channels * size


def expected_bytes(layout: str, width: int, height: int) -> int:
    return bytes_per_pixel(layout) * width * height


def is_ipv6_endpoint(endpoint: str) -> bool:
    """tcp://[address]:port; libzmq refuses those unless ZMQ_IPV6 is set on the socket."""
    scheme, sep, rest = endpoint.partition("://")
    return bool(sep) and scheme == "tcp" and rest.startswith("[")


def new_job_id() -> str:
    import uuid

    return uuid.uuid4().hex


def valid_job_id(value: object) -> bool:
    """1-64 characters of A-Z a-z 0-9 _ . : - and nothing else (no trailing newline)."""
    return isinstance(value, str) and JOB_ID_RE.fullmatch(value) is not None


def is_version(value: object) -> bool:
    """The header's "v" is this protocol's version (JSON true is not 1)."""
    return type(value) is int and value == PROTOCOL_VERSION


def _reject_constant(name: str) -> float:
    # json accepts NaN and Infinity by default; the protocol does not.
    raise ValueError(f"{name} is not valid JSON")


def encode_header(header: dict[str, Any]) -> bytes:
    return json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode_header(raw: Any, max_bytes: int = MAX_HEADER_BYTES) -> dict[str, Any]:
    """Parse a header frame; ProtocolError on anything but a small JSON object."""
    if len(raw) > max_bytes:
        raise ProtocolError("too_large",
                            f"header of {len(raw)} bytes exceeds the limit of {max_bytes}")
    data = bytes(raw)
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ProtocolError("bad_message", f"header is not UTF-8 JSON ({reason})") from None
    if not isinstance(value, dict):
        raise ProtocolError("bad_message", "header must be a JSON object")
    return value


def encode(header: dict[str, Any], frames: Iterable[Any] = ()) -> list[Any]:
    """The frames to send for one message (without routing ids)."""
    return [b"", encode_header(header)] + list(frames)


def split_envelope(frames: Sequence[Any], max_envelope: int = MAX_ENVELOPE
                   ) -> tuple[list[Any], list[Any]]:
    """(routing ids, body) around the first empty frame; ProtocolError if there is none.

    Frames may be bytes or zmq.Frame objects (anything with a length).
    """
    for index in range(min(len(frames), max_envelope + 1)):
        if len(frames[index]) == 0:
            return list(frames[:index]), list(frames[index + 1:])
    raise ProtocolError("bad_message", "no empty delimiter frame before the header")


def header_error(what: str) -> ProtocolError:
    return ProtocolError("bad_header", what)


def get_int(header: dict[str, Any], key: str, low: int, high: int,
            default: int | None = None, required: bool = True) -> int | None:
    value = header.get(key, default)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise header_error(f"{key!r} must be a whole number")
    if value < low or value > high:
        raise header_error(f"{key!r} must be between {low} and {high}, got {value}")
    return value


def get_number(header: dict[str, Any], key: str) -> float | None:
    value = header.get(key)
    if value is None:
        return None
    number = finite_float(value)
    if number is None:
        raise header_error(f"{key!r} must be a finite number")
    return number


def finite_float(value: Any) -> float | None:
    """A JSON number as a finite float, or None: booleans, non-numbers, NaN, infinities
    and integers too large for a float (JSON allows 400 digits) are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def get_str(header: dict[str, Any], key: str, max_len: int = 256) -> str:
    value = header.get(key)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise header_error(f"{key!r} must be a non-empty string of at most {max_len} characters")
    return value
