"""What the editors say to the artist, in one place: why a job failed, why the backend
cannot be reached, what the progress bar shows. Plain words and what to do next; the
technical detail goes last, for a bug report."""

from __future__ import annotations

import os

# -- a job's end ---------------------------------------------------------------------------

_JOB_ERRORS = {
    "cancelled": "Cancelled; the image was not changed.",
    "busy": "The DNI backend is busy with other jobs; try again in a moment.",
    "out_of_memory": "The backend ran out of memory even with small tiles; select a smaller "
                     "area, or use the CPU device.",
    "too_large": "The area is larger than the backend accepts; select a smaller area.",
    "connection_lost": "The DNI backend stopped answering; the image was not changed.",
    "backend_died": "The DNI backend stopped; the image was not changed. It will be started "
                    "again for the next job.",
    "timeout": "The job took too long and was cancelled; the image was not changed.",
}


def job_failed(code: str, detail: str = "") -> str:
    """The message for a job that ended with an error reply (or a lost connection)."""
    text = _JOB_ERRORS.get(code)
    if text is None:
        return f"The DNI backend refused the job: {detail or code}. The image was not changed."
    if code == "cancelled" or not detail:
        return text
    return f"{text} ({detail})"


STAGES = {"queued": "waiting for the backend", "started": "starting",
          "loading": "loading the networks", "blending": "blending the networks",
          "inference": "computing"}


def progress_text(title: str, stage: str) -> str:
    return f"DNI {title}: {STAGES.get(stage, stage or 'working')}…"


# -- reaching the backend ------------------------------------------------------------------

def nothing_answers(endpoint: str, local: bool) -> str:
    if local:
        return (f"Nothing answers at {endpoint}, and starting the backend is switched off. "
                "Switch on 'Start the local backend' in DNI Settings.")
    return (f"Nothing answers at {endpoint}. Make sure the DNI backend runs on that "
            "computer, or check the address in DNI Settings.")


def backend_not_found(installer: str) -> str:
    return ("The DNI backend is not installed, or DNI cannot find it. Run the DNI installer "
            f"again (installers/{installer}), or enter where the backend is in DNI Settings "
            "(Backend command).")


def not_a_backend(endpoint: str, detail: str) -> str:
    return (f"Another program answers at {endpoint}; it is not the DNI backend. Pick another "
            f"port in DNI Settings. (Details: {detail})")


def backend_stopped(returncode: int | None, log_tail: str) -> str:
    lines = [ln for ln in log_tail.strip().splitlines() if not ln.startswith("listening on")]
    text = "The DNI backend stopped unexpectedly."
    if lines:
        text += " Details: " + " / ".join(lines[-3:])[-300:]
    elif returncode is not None:
        text += f" (Details: exit status {returncode})"
    return text


def start_timeout(seconds: float, log_path: str) -> str:
    return (f"The DNI backend did not start within {seconds:.0f} s. Try again; if it keeps "
            f"happening, its log says why: {log_path}")


_START_HINTS = (
    ("Address already in use", "Another program uses the port of {endpoint}. Quit it, or "
     "pick another port in DNI Settings."),
    ("No module named", "The DNI backend is missing a package ({detail}). Run the DNI "
     "installer again to repair it."),
    ("invalid choice: 'serve'", "The DNI backend found is too old for this plugin. Run the "
     "DNI installer again to update it."),
    ("CUDA out of memory", "The GPU has too little free memory; close other GPU programs "
     "or choose the CPU device."),
    ("Permission denied", "The DNI backend cannot be run ({detail}); check its "
     "permissions."),
)


def start_failed(log: str, endpoint: str, returncode: int | None) -> str:
    """Why the backend died while starting, read from its log: what went wrong and what
    to do."""
    for needle, hint in _START_HINTS:
        if needle in log:
            line = next((ln.strip() for ln in log.splitlines() if needle in ln), needle)
            return hint.format(endpoint=endpoint, detail=line[:160])
    tail = " / ".join(log.strip().splitlines()[-6:])
    detail = tail or (f"exit status {returncode}" if returncode is not None else "")
    return "The DNI backend stopped while starting." + (f" Details: {detail}" if detail else "")


def missing_zmq(editor: str, python: str, tag: str, vendor_dir: str, installer: str) -> str:
    return (f"DNI could not load pyzmq for {editor}'s Python {python} ({tag}). Run the DNI "
            f"installer again (installers/{installer}): it fetches the matching pyzmq. "
            f"(Or unpack a pyzmq wheel for this Python into {os.path.join(vendor_dir, tag)}.)")


def ready(families: int, device: str) -> str:
    """The connected state in the artist's words; the endpoint is an Advanced detail."""
    where = ("the graphics card" if device.startswith(("cuda", "rocm", "xpu"))
             else "the Mac's GPU" if device.startswith("mps") else "the processor")
    noun = "family" if families == 1 else "families"
    return f"Ready: {families} model {noun}, computing on {where}."
