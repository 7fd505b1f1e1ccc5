"""The editor side's exceptions. Each message is one line meant for the artist, and
raising one means the image was not changed."""

from __future__ import annotations


class FilterError(Exception):
    """Why a filter cannot run or did not finish; the image is unchanged."""

    code = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class MixError(FilterError, ValueError):
    """A strength, weights or preset that the family cannot take."""

    code = "bad_weights"


class RequestError(FilterError):
    """Something about the layer, selection or options that cannot be sent."""

    code = "bad_request"


class BackendError(FilterError):
    """The backend cannot be reached, or it ended a job with an error."""

    code = "backend"
