"""Registry of the project's own architectures.

A family manifest names an architecture and its options; `build` turns them into an
`nn.Module` with freshly initialised weights, which the loader then fills from the
member files. Families whose manifest says `architecture = "auto"` skip this registry:
spandrel detects the architecture from the state dict (community checkpoints).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _BUILDERS[name] = builder
        return builder

    return decorate


def names() -> list[str]:
    return sorted(_BUILDERS)


def build(name: str, options: dict[str, Any]) -> nn.Module:
    from ..errors import FamilyError

    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise FamilyError(
            f"unknown architecture {name!r}; known: {', '.join(names())} or 'auto'"
        ) from None
    try:
        return builder(**options)
    except TypeError as exc:
        raise FamilyError(f"bad options for architecture {name!r}: {exc}") from None


# Importing the modules registers their architectures.
from . import (  # noqa: E402
    denoise,  # noqa: F401
    plain,  # noqa: F401
    stylize,  # noqa: F401
)
