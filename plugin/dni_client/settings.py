"""Where the backend is and how to reach it: the installer's record (`backend.json` next to
the plugin) overlaid with what the user chose (each editor keeps that in its own settings
store) and an environment variable for tests and multi-instance setups."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .protocol import DEFAULT_ENDPOINT

BACKEND_RECORD = "backend.json"
# The values a user may set (and a host saves); everything else comes from the installer.
USER_KEYS = ("endpoint", "autostart", "server_public_key", "client_keys_dir",
             "backend_command", "family_paths")


@dataclass
class BackendSettings:
    config_dir: str  # the editor's folder for DNI: presets, the backend's log
    endpoint: str = DEFAULT_ENDPOINT
    autostart: bool = True
    timeout: float = 30.0  # a job silent this long counts as lost
    server_public_key: str = ""
    client_keys_dir: str = ""
    backend_command: list[str] = field(default_factory=list)  # the user's, beats installed
    family_paths: list[str] = field(default_factory=list)
    installed: dict[str, Any] = field(default_factory=dict)  # the installer's record

    @classmethod
    def merged(cls, config_dir: str, installed: Mapping[str, Any], user: Mapping[str, Any],
               env_endpoint: str | None = None) -> BackendSettings:
        """Installer's record < user's choices < environment; empty user values don't count."""
        values = {k: installed[k] for k in ("endpoint", "family_paths", "timeout")
                  if installed.get(k) not in (None, "", [])}
        values.update({k: v for k, v in user.items()
                       if k in {f.name for f in fields(cls)} and v not in (None, "", [])})
        if user.get("command") and not values.get("backend_command"):
            values["backend_command"] = user["command"]  # settings files name it like
            # the installer's record
        if env_endpoint:
            values["endpoint"] = env_endpoint
        settings = cls(config_dir=config_dir, installed=dict(installed))
        for key, value in values.items():
            setattr(settings, key, value)
        settings.autostart = _truthy(settings.autostart)
        settings.timeout = float(settings.timeout)
        settings.family_paths = [str(p) for p in settings.family_paths]
        if isinstance(settings.backend_command, str):
            settings.backend_command = [settings.backend_command]
        return settings

    def user_values(self) -> dict[str, Any]:
        """What a host saves in its own settings store."""
        return {k: getattr(self, k) for k in USER_KEYS}

    def backend_record(self) -> dict[str, Any]:
        """What launcher.find_backend looks at: the user's command beats the installer's."""
        record = dict(self.installed)
        if self.backend_command:
            record["command"] = list(self.backend_command)
        return record

    def client_options(self) -> dict[str, Any]:
        """CurveZMQ keys for the client, when the backend is remote."""
        options: dict[str, Any] = {}
        if self.server_public_key:
            options["server_public_key"] = self.server_public_key
            if self.client_keys_dir:
                options["client_keys_dir"] = self.client_keys_dir
        return options

    @property
    def presets_path(self) -> str:
        return os.path.join(self.config_dir, "presets.json")

    @property
    def log_path(self) -> str:
        return os.path.join(self.config_dir, "backend.log")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return bool(value)


def read_json(path: str) -> dict[str, Any]:
    """A JSON object from a file; {} when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: str, data: Mapping[str, Any]) -> None:
    """Atomically: a crash mid-write leaves the old file."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".dni-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(dict(data), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
