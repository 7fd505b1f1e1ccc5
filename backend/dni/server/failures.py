"""Exceptions -> the protocol's error codes: one mapping for requests and for jobs."""

from __future__ import annotations

from dataclasses import dataclass

from dni_client import protocol as P

from ..errors import Cancelled, DNIError

_MAX_MESSAGE = 500  # an unexpected exception's text can be huge (a tensor repr)


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    unexpected: bool = False  # a server bug rather than a bad input: log its traceback


def describe(exc: BaseException) -> Failure:
    if isinstance(exc, P.ProtocolError):
        return Failure(exc.code, exc.message)
    if isinstance(exc, Cancelled):
        return Failure("cancelled", "cancelled")
    if isinstance(exc, DNIError):  # the engine's own codes pass through
        return Failure(exc.code, str(exc))
    if is_out_of_memory(exc):
        # The engine halves its tile on out-of-memory by itself: this is the smallest one.
        return Failure("out_of_memory", "out of memory even with the smallest tile; "
                                        "try a smaller image or region")
    return Failure("internal", f"{type(exc).__name__}: {exc}"[:_MAX_MESSAGE], unexpected=True)


def is_out_of_memory(exc: BaseException) -> bool:
    # torch.OutOfMemoryError (CUDA) by name: this module must not import torch.
    if type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
