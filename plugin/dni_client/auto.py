"""The dialogs' Auto button: the backend reads the strength off the pixels.

The job is the dialog's own preview job with its strength set to `auto` (or, for the
map, its strength map): the backend estimates what the family's axis measures (a noise
sigma), runs the filter at that strength and says in the result what it chose, so the
dialog can set its slider and show the result. Pure Python; hosts call these, they never
read the estimate themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import protocol as P
from .client import Result
from .errors import FilterError, RequestError
from .families import FamilyInfo
from .job import Amount, JobSpec

AUTO = P.AUTO


def check_family(family: FamilyInfo) -> None:
    """RequestError when the family's slider is not something the image can say."""
    if not family.can_estimate:
        raise RequestError(f"{family.title} cannot set its strength by itself: its slider "
                           f"({family.axis_name}) is not something measured in the image, "
                           "such as a noise level.")


def auto_spec(spec: JobSpec, per_region: bool = False) -> JobSpec:
    """The same pixels, with the strength (or a strength map) left to the backend."""
    check_family(spec.family)
    if per_region:
        return spec._replace(amount=Amount(None, None), strength_map=AUTO)
    return spec._replace(amount=Amount(AUTO, None), strength_map=None)


def found_strength(result: Result) -> float:
    """The strength the backend chose, from the result's `auto`; RequestError if absent."""
    found: Any = result.header.get("auto")
    strength = found.get("strength") if isinstance(found, dict) else None
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) \
            or not 0.0 <= strength <= 1.0:
        raise RequestError("The backend did not say which strength it chose; is it an older "
                           "version? Nothing was changed.")
    return float(strength)


def describe(result: Result) -> str:
    """'Auto: noise sigma 27 -> 35 %' for the dialog's status line."""
    found = result.header.get("auto") or {}
    what = str(found.get("measures", "")).replace("-", " ")
    value = found.get("value")
    shown = f"{float(value):.0f}" if isinstance(value, (int, float)) else "?"
    return f"Auto: {what} {shown} → strength {int(round(found_strength(result) * 100))} %"


def request_strength(session: Any, spec: JobSpec, on_found: Callable[[float, str], None],
                     on_failed: Callable[[str], None]) -> Any:
    """Send `spec` as a preview at `auto` through a Session; on_found(strength, text) or
    on_failed(text) is called from the session's tick. Returns the job handle."""

    def on_event(handle: Any) -> None:
        if handle.result is not None:
            try:
                on_found(found_strength(handle.result), describe(handle.result))
            except FilterError as exc:
                on_failed(str(exc))
        elif handle.error is not None:
            on_failed(str(handle.error))

    return session.submit(auto_spec(spec)._replace(preview=True), on_event)


def estimate_strength(session: Any, spec: JobSpec, pump: Callable[[], Any] | None = None
                      ) -> tuple[float, str]:
    """Blocking: (strength, text) for `spec`'s pixels (GIMP's dialog, scripts)."""
    result = session.run(auto_spec(spec), pump=pump)
    return found_strength(result), describe(result)
