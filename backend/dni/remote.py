"""`--server ENDPOINT`: `dni apply`, `dni sweep` and `dni families` run by a `dni serve`
backend instead of in this process. Amounts are checked here first, so a bad one (nan,
inf, out of range) is the same one-line error as without a server."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from dni_client.families import FamilyInfo

from .auto_strength import refusal
from .errors import DNIError, FamilyError
from .server import layouts
from .weighting import validate_strength, validate_weights

_LAYOUT_BY_SHAPE = {(np.dtype(np.uint8), 1): "grey8", (np.dtype(np.uint8), 3): "rgb8",
                    (np.dtype(np.uint8), 4): "rgba8", (np.dtype(np.uint16), 1): "grey16",
                    (np.dtype(np.uint16), 3): "rgb16", (np.dtype(np.uint16), 4): "rgba16",
                    (np.dtype(np.float32), 1): "grey32f", (np.dtype(np.float32), 3): "rgb32f",
                    (np.dtype(np.float32), 4): "rgba32f"}


def _plane(values: np.ndarray | None) -> bytes | None:
    """A [0, 1] map as the protocol's one byte per pixel."""
    if values is None:
        return None
    return np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8).tobytes()


class Remote:
    """One connection to a server for one command; every failure is a DNIError."""

    def __init__(self, endpoint: str) -> None:
        from dni_client import ZmqClient

        self.endpoint = endpoint
        self._client = ZmqClient(endpoint)
        self.max_pixels: int | None = None
        self.last_auto: dict[str, Any] | None = None  # what the server read off the pixels

    def __enter__(self) -> Remote:
        try:
            with self._answers():
                limits = self._client.hello().get("limits") or {}
        except BaseException:
            self._client.close()
            raise
        self.max_pixels = limits.get("max_pixels") if isinstance(limits, dict) else None
        return self

    def __exit__(self, *_exc: object) -> None:
        self._client.close()

    @contextlib.contextmanager
    def _answers(self) -> Iterator[None]:
        from dni_client import ClientError, ConnectionLost, ServerError

        try:
            yield
        except ServerError as exc:
            raise DNIError(f"the server refused: {exc.message}") from None
        except ConnectionLost as exc:
            raise DNIError(f"the dni server at {self.endpoint} stopped answering ({exc}); "
                           "is `dni serve` running there?") from None
        except ClientError as exc:
            raise DNIError(str(exc)) from None

    def families(self) -> list[dict[str, Any]]:
        """The server's families, as `dni families --json` shows them."""
        with self._answers():
            return self._client.families()

    def family(self, name: str) -> FamilyInfo:
        for raw in self.families():
            if raw.get("name") == name:
                return FamilyInfo.from_dict(raw)
        raise FamilyError(f"the server at {self.endpoint} has no family {name!r}")

    def run(self, family: FamilyInfo, image: np.ndarray, *, strength: float | str | None = None,
            weights: Sequence[float] | None = None, mask: np.ndarray | None = None,
            strength_map: np.ndarray | str | None = None, mode: str = "network",
            tile: int | None = None, progress: Callable[[float, str], None] | None = None,
            ) -> np.ndarray:
        """The filtered image, in the input's dtype and channel count. `auto` strengths are
        the server's to estimate; what it found is then in `last_auto`."""
        amount = _checked_amount(family, strength, weights, strength_map)
        channels = 1 if image.ndim == 2 else image.shape[2]
        layout = _LAYOUT_BY_SHAPE[(image.dtype, channels)]
        height, width = image.shape[:2]

        def on_progress(fraction: float, stage: str) -> bool:
            if progress is not None:
                progress(fraction, stage)
            return False  # never cancel

        with self._answers():
            result = self._client.run(
                family.name, width, height, layout, layouts.to_bytes(image, layout),
                mask=_plane(mask), mode=mode, tile=tile, on_progress=on_progress, **amount)
        self.last_auto = result.header.get("auto")
        out = layouts.to_array(result.pixels, result.width, result.height, result.layout)
        return out[:, :, 0] if image.ndim == 2 else np.array(out)


def _checked_amount(family: FamilyInfo, strength: float | str | None,
                    weights: Sequence[float] | None, strength_map: np.ndarray | str | None
                    ) -> dict[str, Any]:
    """strength, weights or strength map, valid for the family (WeightsError otherwise):
    JSON has no nan or inf, and the server's answer to a bad amount would only say it
    later. `auto` goes as it is, for families that can estimate."""
    if isinstance(strength_map, str) or isinstance(strength, str):
        if not family.can_estimate:
            raise refusal(family.name, family.axis_name)
        return {"strength_map": strength_map} if isinstance(strength_map, str) else \
            {"strength": strength}
    if strength_map is not None:
        return {"strength_map": _plane(strength_map)}
    if weights is not None:
        return {"weights": list(validate_weights(weights, len(family.members)))}
    return {"strength": validate_strength(strength)}
