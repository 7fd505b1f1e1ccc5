"""What the server accepts: sizes of headers and images, and how much work may queue."""

from __future__ import annotations

from dataclasses import dataclass

from dni_client import protocol as P


@dataclass
class Limits:
    max_header_bytes: int = P.MAX_HEADER_BYTES
    max_side: int = P.MAX_SIDE
    max_pixels: int = P.MAX_PIXELS
    max_queue: int = 64             # queued jobs, all clients together
    max_queue_per_client: int = 16
    max_queue_bytes: int = 4 * 2**30

    @property
    def max_frame_bytes(self) -> int:
        """The largest data frame a run can need: max_pixels in the widest layout."""
        widest = max(channels * size for channels, size, _, _ in P.LAYOUTS.values())
        return self.max_pixels * widest

    def to_dict(self) -> dict[str, int]:
        """The limits as `hello` reports them."""
        return {"max_header_bytes": self.max_header_bytes, "max_side": self.max_side,
                "max_pixels": self.max_pixels, "max_frames": P.MAX_FRAMES,
                "max_message_bytes": self.max_frame_bytes, "max_queue": self.max_queue,
                "max_queue_per_client": self.max_queue_per_client}
