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
                "Switch on 'Start the local backend' in the DNI settings, or start "
                "`dni serve` yourself.")
    return (f"Nothing answers at {endpoint}. Start `dni serve --endpoint {endpoint}` on "
            "that machine, or check the address in the DNI settings.")


def backend_not_found(installer: str) -> str:
    return ("The DNI backend (`dni`) was not found. Install it, then run "
            f"`python installers/{installer} --backend /path/to/dni`, or enter the "
            "command in the DNI settings.")


def not_a_backend(endpoint: str, detail: str) -> str:
    return (f"Something answers at {endpoint} but it is not a working DNI backend: "
            f"{detail}. Pick another port in the DNI settings.")


def backend_stopped(returncode: int | None, log_tail: str) -> str:
    why = f"exit code {returncode}" if returncode is not None else "it exited"
    lines = [ln for ln in log_tail.strip().splitlines() if not ln.startswith("listening on")]
    text = f"The DNI backend stopped ({why})."
    if lines:
        text += " Its last words: " + " / ".join(lines[-3:])[-300:]
    return text


def start_timeout(seconds: float, log_path: str) -> str:
    return f"The DNI backend did not answer within {seconds:.0f} s. Its log is {log_path}."


_START_HINTS = (
    ("Address already in use", "Another program uses the port of {endpoint}. Quit it, or "
     "pick another endpoint in the DNI settings."),
    ("No module named", "The backend's Python is missing a package ({detail}). Reinstall "
     "the backend (`pip install -e .` in the DNI folder) and run the installer again."),
    ("invalid choice: 'serve'", "The `dni` found is too old to have `dni serve`. Update the "
     "backend and run the installer again."),
    ("CUDA out of memory", "The GPU has too little free memory; close other GPU programs "
     "or choose the CPU device."),
    ("Permission denied", "The backend command cannot be run ({detail}); check its "
     "permissions."),
)


def start_failed(log: str, endpoint: str, returncode: int | None) -> str:
    """Why the backend died while starting, read from its log: what went wrong and what
    to do."""
    for needle, hint in _START_HINTS:
        if needle in log:
            line = next((ln.strip() for ln in log.splitlines() if needle in ln), needle)
            return hint.format(endpoint=endpoint, detail=line[:160])
    tail = "\n".join(log.strip().splitlines()[-6:])
    code = "" if returncode is None else f" (exit code {returncode})"
    return (f"The DNI backend stopped while starting{code}. Its last words:\n{tail}"
            if tail else f"The DNI backend stopped while starting{code}.")


def missing_zmq(editor: str, python: str, tag: str, vendor_dir: str, installer: str) -> str:
    return (f"DNI could not load pyzmq for {editor}'s Python {python} ({tag}). Run "
            f"`python installers/{installer}` again (it fetches the matching pyzmq), or "
            f"unpack a pyzmq wheel for this Python into {os.path.join(vendor_dir, tag)}.")
