"""Registry of the project's own architectures.

A family manifest names an architecture and its options; `build` turns them into an
`nn.Module` with freshly initialised weights, which the loader then fills from the
member files. Families whose manifest says `architecture = "auto"` skip this registry:
spandrel detects the architecture from the state dict (community checkpoints).

Each architecture declares the range of its whole-number options: a manifest comes from
whoever wrote the family folder, and `features = 1000000000` would otherwise allocate
without bound before any weight is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

Bounds = dict[str, tuple[int, int]]  # option -> (lowest, highest) accepted value
_BUILDERS: dict[str, tuple[Callable[..., nn.Module], Bounds]] = {}


def register(name: str, bounds: Bounds | None = None,
             ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _BUILDERS[name] = (builder, dict(bounds or {}))
        return builder

    return decorate


def names() -> list[str]:
    return sorted(_BUILDERS)


def check_options(name: str, options: dict[str, Any], bounds: Bounds) -> None:
    """FamilyError unless every bounded option is a whole number within its range."""
    from ..errors import FamilyError

    for key, (low, high) in bounds.items():
        if key not in options:
            continue
        value = options[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise FamilyError(f"architecture {name!r}: option {key!r} must be a whole number, "
                              f"not {value!r}")
        if not low <= value <= high:
            shown = str(value) if abs(value) < 10**12 else "one that large"
            raise FamilyError(f"architecture {name!r}: option {key!r} must be from {low} to "
                              f"{high}, not {shown}")


def build(name: str, options: dict[str, Any]) -> nn.Module:
    from ..errors import FamilyError

    try:
        builder, bounds = _BUILDERS[name]
    except KeyError:
        raise FamilyError(
            f"unknown architecture {name!r}; known: {', '.join(names())} or 'auto'"
        ) from None
    check_options(name, options, bounds)
    try:
        return builder(**options)
    except (TypeError, ValueError) as exc:
        raise FamilyError(f"bad options for architecture {name!r}: {exc}") from None


# Importing the modules registers their architectures.
from . import (  # noqa: E402
    denoise,  # noqa: F401
    plain,  # noqa: F401
    stylize,  # noqa: F401
)
