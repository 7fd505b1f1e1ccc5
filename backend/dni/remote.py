"""`dni apply --server ENDPOINT`: the same job, run by a `dni serve` backend."""

from __future__ import annotations

import argparse

import numpy as np

from dni_client.families import FamilyInfo

from .errors import DNIError
from .server import layouts
from .weighting import find_preset

_LAYOUT_BY_SHAPE = {(np.dtype(np.uint8), 1): "grey8", (np.dtype(np.uint8), 3): "rgb8",
                    (np.dtype(np.uint8), 4): "rgba8", (np.dtype(np.uint16), 1): "grey16",
                    (np.dtype(np.uint16), 3): "rgb16", (np.dtype(np.uint16), 4): "rgba16"}


def _plane(values: np.ndarray | None) -> bytes | None:
    """A [0, 1] map as the protocol's one byte per pixel."""
    if values is None:
        return None
    return np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8).tobytes()


def _weighting(args: argparse.Namespace, family: FamilyInfo) -> dict:
    if args.preset is None:
        return {"strength": args.strength, "weights": args.weights}
    preset = find_preset(family.presets, args.preset, f"family {family.name!r}")
    return {"strength": preset.strength, "weights": preset.weights}


def run_remote(args: argparse.Namespace, image: np.ndarray, mask: np.ndarray | None,
               strength_map: np.ndarray | None) -> np.ndarray:
    from dni_client import ClientError, ConnectionLost, ServerError, ZmqClient

    channels = 1 if image.ndim == 2 else image.shape[2]
    layout = _LAYOUT_BY_SHAPE[(image.dtype, channels)]
    height, width = image.shape[:2]
    try:
        with ZmqClient(args.server) as client:
            family = next((FamilyInfo.from_dict(f) for f in client.families()
                           if f.get("name") == args.family), None)
            if family is None:
                raise DNIError(f"the server at {args.server} has no family {args.family!r}")
            result = client.run(
                args.family, width, height, layout, layouts.to_bytes(image, layout),
                mask=_plane(mask), strength_map=_plane(strength_map), mode=args.mode,
                tile=args.tile, **_weighting(args, family))
    except ServerError as exc:
        raise DNIError(f"the server refused the job: {exc.message}") from None
    except ConnectionLost:
        raise DNIError(f"no answer from a dni server at {args.server} "
                       "(start one with `dni serve`)") from None
    except ClientError as exc:
        raise DNIError(str(exc)) from None
    out = layouts.to_array(result.pixels, result.width, result.height, result.layout)
    return out[:, :, 0] if image.ndim == 2 else np.array(out)
