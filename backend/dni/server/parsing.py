"""Request parsing: the frames of one ROUTER message -> a typed request, or a RequestError.

Pure: no sockets, no threads, no engine. A frame is anything with a length that exposes
the buffer protocol (`zmq.Frame` on the server, `bytes` in tests); data frames are kept
as they came, so that the worker can decode the pixels without copying them.

The checks run in the order the protocol documents, and the first failure decides the
error code (docs/protocol.md, "Error codes").
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from dni_client import protocol as P

from .limits import Limits

Client = tuple[bytes, ...]  # routing ids: where replies go, and whose jobs are whose


class RequestError(P.ProtocolError):
    """A refused request: the protocol error, plus where its error reply goes."""

    def __init__(self, code: str, message: str, client: Client,
                 request_id: object = None) -> None:
        super().__init__(code, message)
        self.client = client
        self.request_id = request_id  # as the header gave it: maybe not a valid id


@dataclass(frozen=True)
class Request:
    """A well-formed request for an op that carries no data (all but `run`)."""

    client: Client
    op: str
    id: str


@dataclass(frozen=True)
class RunRequest(Request):
    family: str
    width: int
    height: int
    layout: str                      # canonical name
    # Frame name -> frame, in the header's order. The one mutable part: a job empties it
    # once it is done, to let go of the pixels early.
    frames: dict[str, Any] = field(compare=False)
    strength: float | None = None
    weights: list[float] | None = None
    mode: str = "network"
    preview: bool = False
    tile: int | None = None


def parse_request(frames: Sequence[Any], limits: Limits,
                  ops: Collection[str] = P.OPS) -> Request:
    """Parse one message as the ROUTER delivers it: [identity, *routing ids, b"", header,
    *data]. `ops` are the ops the server serves. Raises RequestError, which names the
    client to answer."""
    identity: Client = (bytes(frames[0]),)
    try:
        envelope, body = P.split_envelope(frames[1:])
    except P.ProtocolError as exc:
        raise RequestError(exc.code, exc.message, identity) from None
    client = identity + tuple(bytes(frame) for frame in envelope)
    header: dict[str, Any] = {}
    try:
        header = _read_header(body, limits)
        return _parse_header(client, header, body[1:], limits, ops)
    except P.ProtocolError as exc:
        raise RequestError(exc.code, exc.message, client, header.get("id")) from None


def _read_header(body: Sequence[Any], limits: Limits) -> dict[str, Any]:
    if not body:
        raise P.ProtocolError("bad_message", "no header frame after the delimiter")
    if len(body) > P.MAX_FRAMES:
        raise P.ProtocolError("too_large", f"{len(body)} frames after the delimiter; at most "
                              f"{P.MAX_FRAMES} (header, pixels, mask, strength map)")
    return P.decode_header(memoryview(body[0]), limits.max_header_bytes)


def _parse_header(client: Client, header: dict[str, Any], data: Sequence[Any],
                  limits: Limits, ops: Collection[str]) -> Request:
    version = header.get("v")
    if version != P.PROTOCOL_VERSION:
        raise P.ProtocolError("unsupported_version", f"protocol version {version!r} is not "
                              f"supported; this server speaks {P.PROTOCOL_VERSION}")
    request_id = header.get("id")
    if not isinstance(request_id, str) or not P.JOB_ID_RE.match(request_id):
        raise P.header_error("'id' must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    op = header.get("op")
    if op != P.OP_RUN and data:
        raise P.ProtocolError("bad_frames", f"{op!r} takes no data frames")
    if not isinstance(op, str) or op not in ops:
        raise P.ProtocolError("unknown_op", f"unknown op {op!r}; known: {', '.join(ops)}")
    if op == P.OP_RUN:
        return _parse_run(client, request_id, header, data, limits)
    return Request(client=client, op=op, id=request_id)


def _parse_run(client: Client, request_id: str, header: dict[str, Any], data: Sequence[Any],
               limits: Limits) -> RunRequest:
    family = P.get_str(header, "family", 64)
    width, height = _image_size(header, limits)
    layout = P.canonical_layout(header.get("layout"))
    strength = P.get_number(header, "strength")
    weights = _weights(header)
    mode = header.get("mode", "network")
    if mode not in P.MODES:
        raise P.header_error(f"'mode' must be one of {', '.join(P.MODES)}")
    preview = header.get("preview", False)
    if not isinstance(preview, bool):
        raise P.header_error("'preview' must be true or false")
    tile = P.get_int(header, "tile", 1, 1 << 16, required=False)
    frames = _data_frames(header, data, layout, width, height)
    return RunRequest(client=client, op=P.OP_RUN, id=request_id, family=family, width=width,
                      height=height, layout=layout, frames=frames, strength=strength,
                      weights=weights, mode=mode, preview=preview, tile=tile)


def _image_size(header: dict[str, Any], limits: Limits) -> tuple[int, int]:
    width = P.get_int(header, "width", 1, limits.max_side)
    height = P.get_int(header, "height", 1, limits.max_side)
    assert width is not None and height is not None  # required=True never gives None
    if width * height > limits.max_pixels:
        raise P.ProtocolError("too_large", f"{width}x{height} is over the limit of "
                              f"{limits.max_pixels} pixels")
    return width, height


def _weights(header: dict[str, Any]) -> list[float] | None:
    weights = header.get("weights")
    if weights is None:
        return None
    if (not isinstance(weights, list) or not weights or len(weights) > P.MAX_WEIGHTS
            or any(isinstance(w, bool) or not isinstance(w, (int, float)) for w in weights)):
        raise P.header_error(f"'weights' must be a list of 1-{P.MAX_WEIGHTS} numbers")
    return [float(w) for w in weights]


def _data_frames(header: dict[str, Any], data: Sequence[Any], layout: str, width: int,
                 height: int) -> dict[str, Any]:
    """The data frames by name, each checked against the size the header implies."""
    names = header.get("frames", [P.FRAME_PIXELS])
    if (not isinstance(names, list) or not names or names[0] != P.FRAME_PIXELS
            or any(n not in P.RUN_FRAMES for n in names) or len(set(names)) != len(names)):
        raise P.header_error("'frames' must list 'pixels' first, then optionally 'mask' and "
                             "'strength_map', each once")
    if len(names) != len(data):
        raise P.ProtocolError("bad_frames", f"the header names {len(names)} data frame(s), "
                              f"the message has {len(data)}")
    frames = dict(zip(names, data, strict=True))
    need = P.expected_bytes(layout, width, height)
    got = len(frames[P.FRAME_PIXELS])
    if got != need:
        raise P.ProtocolError("bad_frames", f"pixels: {width}x{height} {layout} needs {need} "
                              f"bytes, the frame has {got}")
    for name in names[1:]:
        if len(frames[name]) != width * height:
            raise P.ProtocolError("bad_frames", f"{name}: needs {width * height} bytes (one "
                                  f"per pixel), the frame has {len(frames[name])}")
    return frames
