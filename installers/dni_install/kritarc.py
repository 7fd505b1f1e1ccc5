"""Krita starts Python plugins only when kritarc says so: `[python]` `enable_<name>=true`.
These edit that one line and keep every other line as it is."""

from __future__ import annotations

from pathlib import Path


def _is_section(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith("[") and stripped.endswith("]")


def _write_if_changed(kritarc: Path, lines: list[str]) -> bool:
    text = "\n".join(lines) + "\n"
    if kritarc.exists() and kritarc.read_text(encoding="utf-8") == text:
        return False
    kritarc.parent.mkdir(parents=True, exist_ok=True)
    kritarc.write_text(text, encoding="utf-8")
    return True


def enable(kritarc: Path, name: str) -> bool:
    """Set [python] enable_<name>=true. True if the file changed."""
    key = f"enable_{name}"
    lines = kritarc.read_text(encoding="utf-8").splitlines() if kritarc.exists() else []
    out: list[str] = []
    in_python, done = False, False
    for line in lines:
        if _is_section(line):
            if in_python and not done:
                out.append(f"{key}=true")
                done = True
            in_python = line.strip() == "[python]"
        elif in_python and line.strip().split("=", 1)[0].strip() == key:
            if not done:
                out.append(f"{key}=true")
                done = True
            continue
        out.append(line)
    if not done:
        if not in_python:
            if out and out[-1].strip():
                out.append("")
            out.append("[python]")
        out.append(f"{key}=true")
    return _write_if_changed(kritarc, out)


def disable(kritarc: Path, name: str) -> bool:
    """Remove the enable_<name> line from [python] (uninstall). True if the file changed."""
    if not kritarc.exists():
        return False
    key = f"enable_{name}"
    out: list[str] = []
    in_python = False
    for line in kritarc.read_text(encoding="utf-8").splitlines():
        if _is_section(line):
            in_python = line.strip() == "[python]"
        elif in_python and line.strip().split("=", 1)[0].strip() == key:
            continue
        out.append(line)
    return _write_if_changed(kritarc, out)
