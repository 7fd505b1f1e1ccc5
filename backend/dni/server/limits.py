"""What the server accepts: sizes of headers, messages and images, how much work may
queue, and how long a client that stops reading is waited for."""

from __future__ import annotations

from dataclasses import dataclass

from dni_client import protocol as P

_ROUTING_ID_BYTES = 255  # ZMTP's longest routing id


@dataclass
class Limits:
    max_header_bytes: int = P.MAX_HEADER_BYTES
    max_side: int = P.MAX_SIDE
    max_pixels: int = P.MAX_PIXELS  # of the input, and of the output (x scale²)
    max_queue: int = 64             # queued jobs, all clients together
    max_queue_per_client: int = 16
    # Request and result bytes held for jobs not answered yet (queued, running, or
    # whose reply waits for a slow reader): the global in-flight budget.
    max_queue_bytes: int = 4 * 2**30
    # Complete messages libzmq may buffer per connection before it stops reading from
    # it; the I/O thread drains them as they come, so a few are plenty.
    receive_hwm: int = 4
    # Messages libzmq may buffer per connection towards a client; past that, replies
    # wait in the server's own backlog for that client (router.py). Small, because
    # libzmq counts messages, not bytes: only the backlog can see what a client leaves
    # unread. A client that reads drains it between two of its polls.
    send_hwm: int = 64
    # A client whose backlog exceeds these, or who has not been writable for
    # backlog_seconds, is cut off: its backlog is discarded and its jobs are cancelled.
    max_backlog: int = 1000
    max_backlog_bytes: int = 256 * 2**20  # a single larger reply (a result) may wait
    backlog_seconds: float = 30.0

    @property
    def max_frame_bytes(self) -> int:
        """The largest data frame a run can need: max_pixels in the widest layout."""
        widest = max(channels * size for channels, size, _, _ in P.LAYOUTS.values())
        return self.max_pixels * widest

    @property
    def max_message_frames(self) -> int:
        """Frames of the largest valid message as the ROUTER hands it over: the peer's
        routing id, a broker's and the client's routing ids, the delimiter, header and
        data frames."""
        return 1 + (1 + P.MAX_ENVELOPE) + 1 + P.MAX_FRAMES

    @property
    def max_request_bytes(self) -> int:
        """Bytes of the largest valid request: routing ids, header, pixels, mask and
        strength map. A message past this is cut off as it is read (too_large)."""
        routing = (1 + P.MAX_ENVELOPE) * _ROUTING_ID_BYTES
        return routing + self.max_header_bytes + self.max_frame_bytes + 2 * self.max_pixels

    def output_too_large(self, width: int, height: int, scale: int) -> str | None:
        """Why a job's output (input x scale²) is over max_pixels; None when it fits."""
        pixels = width * height * scale * scale
        if pixels <= self.max_pixels:
            return None
        return (f"{width}x{height} at scale {scale} makes {width * scale}x{height * scale}, "
                f"over the limit of {self.max_pixels} output pixels")

    def to_dict(self) -> dict[str, int]:
        """The limits as `hello` reports them."""
        return {"max_header_bytes": self.max_header_bytes, "max_side": self.max_side,
                "max_pixels": self.max_pixels, "max_output_pixels": self.max_pixels,
                "max_frames": P.MAX_FRAMES, "max_message_bytes": self.max_frame_bytes,
                "max_request_bytes": self.max_request_bytes, "max_queue": self.max_queue,
                "max_queue_per_client": self.max_queue_per_client}
