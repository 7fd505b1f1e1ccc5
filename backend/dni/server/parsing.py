"""Request parsing: the frames of one ROUTER message -> a typed request, or a RequestError.

Pure: no sockets, no threads, no engine. A frame is anything with a length that exposes
the buffer protocol (`zmq.Frame` on the server, `bytes` in tests); data frames are kept
as they came, so that the worker can decode the pixels without copying them.

The checks run in the order the protocol documents, and the first failure decides the
error code (docs/protocol.md, "Error codes").

Who a message is from: the ROUTER puts the peer's routing id first. Behind a broker that
peer is the broker (one of the `brokers` routing ids the server gave its own connections),
and the broker's frontend has put the client's routing id second: that pair is the
client's connection. Any further routing frames are the sender's own claim, used to
address replies but never to tell clients apart (limits are per connection).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dni_client import protocol as P

from .limits import Limits

Client = tuple[bytes, ...]  # routing ids: where replies go, and whose jobs are whose
Brokers = Collection[bytes]  # routing ids of the broker connections the server made


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
    via_broker: bool = field(default=False, kw_only=True)  # the peer is one of our brokers

    @property
    def connection(self) -> Client:
        """The client's connection (what per-client limits count): the peer's routing id,
        and behind a broker the client's routing id that the broker put second."""
        return self.client[:2] if self.via_broker else self.client[:1]

    @property
    def direct(self) -> bool:
        """No router between the client and this server: then this server is the only
        one that can hold the client's jobs (clients rely on it, docs/protocol.md)."""
        return len(self.client) == 1


@dataclass(frozen=True)
class PingRequest(Request):
    jobs: tuple[str, ...] = ()  # job ids the client asks about


@dataclass(frozen=True)
class InstallRequest(Request):
    family: str = ""  # a catalogue name; the catalogue says whether it has it


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
    auto: str | None = None  # "strength" or "strength_map": the server estimates it


def parse_request(frames: Sequence[Any], limits: Limits, ops: Collection[str] = P.OPS,
                  brokers: Brokers = ()) -> Request:
    """Parse one message as the ROUTER delivers it: [identity, *routing ids, b"", header,
    *data]. `ops` are the ops the server serves, `brokers` the routing ids of its broker
    connections. Raises RequestError, which names the client to answer."""
    identity = bytes(frames[0])
    via_broker = identity in brokers and len(frames) > 1 and len(frames[1]) > 0
    # Without a delimiter a reply to the bare broker would be lost: answer its client.
    sender: Client = (identity, bytes(frames[1])) if via_broker else (identity,)
    try:
        # A broker's routing frame does not count against the client's envelope.
        envelope, body = P.split_envelope(frames[1:], P.MAX_ENVELOPE + int(via_broker))
    except P.ProtocolError as exc:
        raise RequestError(exc.code, exc.message, sender) from None
    client = (identity, *(bytes(frame) for frame in envelope))
    header: dict[str, Any] = {}
    try:
        header = _read_header(body, limits)
        request = _parse_header(client, header, body[1:], limits, ops)
    except P.ProtocolError as exc:
        raise RequestError(exc.code, exc.message, client, header.get("id")) from None
    return replace(request, via_broker=via_broker) if via_broker else request


def refuse_oversized(frames: Sequence[Any], count: int, nbytes: int, limits: Limits,
                     brokers: Brokers = ()) -> RequestError:
    """The `too_large` error for a message the router cut short (more frames or bytes
    than any valid request has); `frames` are the ones it kept. The error goes where the
    envelope says, with the header's id when there is one."""
    delimiter = next((i for i in range(1, len(frames)) if len(frames[i]) == 0), len(frames))
    client: Client = (bytes(frames[0]),)
    request_id: object = None
    try:  # envelope and header only: who asked, and the id to echo
        head = parse_request(frames[:delimiter + 2], limits, P.OPS, brokers)
        client, request_id = head.client, head.id
    except RequestError as exc:
        client, request_id = exc.client, exc.request_id
    return RequestError("too_large", f"a message of {count} frames and {nbytes} bytes; a "
                        f"request has at most {limits.max_message_frames} frames and "
                        f"{limits.max_request_bytes} bytes", client, request_id)


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
    if not P.is_version(version):
        raise P.ProtocolError("unsupported_version", f"protocol version {version!r} is not "
                              f"supported; this server speaks {P.PROTOCOL_VERSION}")
    request_id = header.get("id")
    if not P.valid_job_id(request_id):
        raise P.header_error("'id' must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    op = header.get("op")
    if op != P.OP_RUN and data:
        raise P.ProtocolError("bad_frames", f"{op!r} takes no data frames")
    if not isinstance(op, str) or op not in ops:
        raise P.ProtocolError("unknown_op", f"unknown op {op!r}; known: {', '.join(ops)}")
    if op == P.OP_RUN:
        return _parse_run(client, request_id, header, data, limits)
    if op == P.OP_PING:
        return PingRequest(client=client, op=op, id=request_id, jobs=_ping_jobs(header))
    if op == P.OP_INSTALL:
        return InstallRequest(client=client, op=op, id=request_id,
                              family=P.get_str(header, "family", 64))
    return Request(client=client, op=op, id=request_id)


def _ping_jobs(header: dict[str, Any]) -> tuple[str, ...]:
    jobs = header.get("jobs", [])
    if (not isinstance(jobs, list) or len(jobs) > P.MAX_PING_JOBS
            or not all(P.valid_job_id(job) for job in jobs)):
        raise P.header_error(f"'jobs' must be a list of at most {P.MAX_PING_JOBS} job ids")
    return tuple(jobs)


def _parse_run(client: Client, request_id: str, header: dict[str, Any], data: Sequence[Any],
               limits: Limits) -> RunRequest:
    family = P.get_str(header, "family", 64)
    width, height = _image_size(header, limits)
    layout = P.canonical_layout(header.get("layout"))
    auto = _auto(header)
    strength = None if auto == "strength" else P.get_number(header, "strength")
    weights = _weights(header)
    mode = header.get("mode", "network")
    if mode not in P.MODES:
        raise P.header_error(f"'mode' must be one of {', '.join(P.MODES)}")
    preview = header.get("preview", False)
    if not isinstance(preview, bool):
        raise P.header_error("'preview' must be true or false")
    tile = P.get_int(header, "tile", 1, 1 << 16, required=False)
    frames = _data_frames(header, data, layout, width, height)
    if auto == P.FRAME_STRENGTH_MAP and P.FRAME_STRENGTH_MAP in frames:
        raise P.header_error("'strength_map' is 'auto' and a strength map frame was sent: "
                             "send one or the other")
    return RunRequest(client=client, op=P.OP_RUN, id=request_id, family=family, width=width,
                      height=height, layout=layout, frames=frames, strength=strength,
                      weights=weights, mode=mode, preview=preview, tile=tile, auto=auto)


def _auto(header: dict[str, Any]) -> str | None:
    """Which amount the server is to read off the pixels: "strength", "strength_map" or
    neither. In the header a strength map can only be 'auto' (a real one is a frame)."""
    if header.get(P.FRAME_STRENGTH_MAP, P.AUTO) != P.AUTO:
        raise P.header_error(f"'strength_map' in the header can only be '{P.AUTO}'; a map "
                             "is sent as a data frame")
    asked = [name for name in ("strength", P.FRAME_STRENGTH_MAP) if header.get(name) == P.AUTO]
    if len(asked) > 1:
        raise P.header_error(f"'strength' and 'strength_map' cannot both be '{P.AUTO}'")
    return asked[0] if asked else None


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
    numbers = [P.finite_float(w) for w in weights] if isinstance(weights, list) else []
    if not numbers or len(numbers) > P.MAX_WEIGHTS or None in numbers:
        raise P.header_error(f"'weights' must be a list of 1-{P.MAX_WEIGHTS} finite numbers")
    return numbers  # type: ignore[return-value]


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
