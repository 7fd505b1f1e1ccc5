"""The release, in one place: the plugins, the backend (`dni.__version__`, which the
`hello` reply carries) and the wheel (pyproject.toml reads it from here). A plugin that
meets a backend of another release offers to update it (install_offer)."""

from __future__ import annotations

VERSION = "0.1.0"
