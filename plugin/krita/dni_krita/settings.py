"""Plugin settings: Krita's own settings file (kritarc, group "DNI") for what the user
changes in the dialog, and the installer's `backend.json` next to the plugin for where the
backend lives. The user's presets and the backend log go to <Krita resources>/dni/."""

from __future__ import annotations

import json
import os
from typing import Any

from dni_client import launcher

GROUP = "DNI"
PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
BACKEND_FILE = os.path.join(PLUGIN_DIR, launcher.SETTINGS_NAME)


def _app() -> Any:
    try:
        from krita import Krita

        return Krita.instance()
    except Exception:  # outside Krita (tests, tools)
        return None


def resource_dir() -> str:
    app = _app()
    location = ""
    if app is not None and hasattr(app, "getAppDataLocation"):
        try:
            location = str(app.getAppDataLocation())
        except Exception:
            location = ""
    if not location:
        # The plugin lives in <resources>/pykrita/dni_krita.
        location = os.path.dirname(os.path.dirname(PLUGIN_DIR))
    return location


class Settings:
    def __init__(self) -> None:
        self.endpoint = launcher.DEFAULT_ENDPOINT
        self.server_public_key = ""
        self.client_keys_dir = ""
        self.preview_size = 384
        self.autostart = True
        self.timeout = 20.0
        self.backend_command: list[str] = []
        self.family_paths: list[str] = []
        self.config_dir = os.path.join(resource_dir(), "dni")
        self._installed: dict[str, Any] = {}

    @classmethod
    def load(cls) -> Settings:
        s = cls()
        s._installed = launcher.read_settings(BACKEND_FILE)
        s.endpoint = str(s._installed.get("endpoint") or s.endpoint)
        s.family_paths = [str(p) for p in s._installed.get("family_paths") or []]
        app = _app()
        if app is not None:
            def read(key: str, default: str) -> str:
                value = app.readSetting(GROUP, key, default)
                return default if value is None or value == "" else str(value)

            s.endpoint = read("endpoint", s.endpoint)
            s.server_public_key = read("server_public_key", "")
            s.client_keys_dir = read("client_keys_dir", "")
            try:
                s.preview_size = max(64, min(2048, int(read("preview_size", "384"))))
            except ValueError:
                pass
            s.autostart = read("autostart", "true") == "true"
            command = read("backend_command", "")
            if command:
                s.backend_command = [command]
            extra = read("family_paths", "")
            if extra:
                s.family_paths = [p for p in extra.split(os.pathsep) if p]
        env = os.environ.get("DNI_KRITA_ENDPOINT")  # for tests and multi-instance setups
        if env:
            s.endpoint = env
        return s

    def save(self) -> None:
        app = _app()
        if app is None:
            return
        app.writeSetting(GROUP, "endpoint", self.endpoint)
        app.writeSetting(GROUP, "server_public_key", self.server_public_key)
        app.writeSetting(GROUP, "client_keys_dir", self.client_keys_dir)
        app.writeSetting(GROUP, "preview_size", str(self.preview_size))
        app.writeSetting(GROUP, "autostart", "true" if self.autostart else "false")
        app.writeSetting(GROUP, "backend_command", " ".join(self.backend_command))
        app.writeSetting(GROUP, "family_paths", os.pathsep.join(self.family_paths))

    def backend_settings(self) -> dict[str, Any]:
        """What launcher.find_backend looks at: the user's command beats the installer's."""
        data = dict(self._installed)
        if self.backend_command:
            data["command"] = list(self.backend_command)
        return data

    @property
    def presets_path(self) -> str:
        return os.path.join(self.config_dir, "presets.json")

    # Families of the last session: menu entries exist before the backend is up.
    @property
    def _cache_path(self) -> str:
        return os.path.join(self.config_dir, "families.json")

    def cache_families(self, families: list[dict[str, Any]]) -> None:
        try:
            os.makedirs(self.config_dir, exist_ok=True)
            with open(self._cache_path, "w", encoding="utf-8") as f:
                json.dump(families, f)
        except OSError:
            pass

    def cached_families(self) -> list[dict[str, Any]] | None:
        try:
            with open(self._cache_path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, list) else None
