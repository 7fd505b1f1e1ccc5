"""The Krita plugin's settings: the user's choices live in Krita's own settings file
(kritarc, group "DNI"); where the backend lives comes from the installer's backend.json
next to the plugin. Presets, the families of the last session and the backend's log go to
<Krita resources>/dni/."""

from __future__ import annotations

import json
import os
from typing import Any

from dni_client.job import Amount
from dni_client.settings import BACKEND_RECORD, BackendSettings, read_json

GROUP = "DNI"
PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
BACKEND_FILE = os.path.join(PLUGIN_DIR, BACKEND_RECORD)
ENDPOINT_ENV = "DNI_KRITA_ENDPOINT"  # tests and several Kritas side by side
DEFAULT_TIMEOUT = 20.0
DEFAULT_PREVIEW_SIZE = 384


def _app() -> Any:
    try:
        from krita import Krita
    except ImportError:  # outside Krita (tests, tools)
        return None
    return Krita.instance()


def resource_dir() -> str:
    app = _app()
    location = str(app.getAppDataLocation()) if app is not None and hasattr(
        app, "getAppDataLocation") else ""
    # Fallback: the plugin lives in <resources>/pykrita/dni_krita.
    return location or os.path.dirname(os.path.dirname(PLUGIN_DIR))


def _read(app: Any, key: str) -> str:
    value = app.readSetting(GROUP, key, "")
    return "" if value is None else str(value)


class KritaSettings:
    """BackendSettings plus what only the Krita dialog has (the preview size)."""

    def __init__(self, backend: BackendSettings, preview_size: int = DEFAULT_PREVIEW_SIZE
                 ) -> None:
        self.backend = backend
        self.preview_size = preview_size
        self.last_amounts: dict[str, Any] = {}  # family -> the strength or mix last applied

    def last_amount(self, family: str) -> Amount | None:
        """What the artist last applied with this family (the dialog opens there)."""
        raw = self.last_amounts.get(family)
        if not isinstance(raw, dict):
            return None
        weights = raw.get("weights")
        return Amount(raw.get("strength"), tuple(weights) if isinstance(weights, list) else None)

    def remember(self, family: str, amount: Amount) -> None:
        self.last_amounts[family] = {"strength": amount.strength, "weights":
                                     list(amount.weights) if amount.weights else None}
        app = _app()
        if app is not None:
            app.writeSetting(GROUP, "last_amounts", json.dumps(self.last_amounts))

    @classmethod
    def load(cls) -> KritaSettings:
        app = _app()
        user: dict[str, Any] = {"timeout": DEFAULT_TIMEOUT}
        preview_size = DEFAULT_PREVIEW_SIZE
        if app is not None:
            for key in ("endpoint", "server_public_key", "client_keys_dir", "autostart"):
                user[key] = _read(app, key)
            user["backend_command"] = [_read(app, "backend_command")]
            user["family_paths"] = [p for p in _read(app, "family_paths").split(os.pathsep)
                                    if p]
            if _read(app, "preview_size").isdigit():
                preview_size = max(64, min(2048, int(_read(app, "preview_size"))))
        user["backend_command"] = [c for c in user.get("backend_command", []) if c]
        backend = BackendSettings.merged(os.path.join(resource_dir(), "dni"),
                                         read_json(BACKEND_FILE), user,
                                         os.environ.get(ENDPOINT_ENV))
        settings = cls(backend, preview_size)
        if app is not None:
            try:
                saved = json.loads(_read(app, "last_amounts") or "{}")
            except ValueError:
                saved = {}  # a hand-edited kritarc: start from the defaults
            settings.last_amounts = saved if isinstance(saved, dict) else {}
        return settings

    def save(self) -> None:
        app = _app()
        if app is None:
            return
        b = self.backend
        values = {"endpoint": b.endpoint, "server_public_key": b.server_public_key,
                  "client_keys_dir": b.client_keys_dir,
                  "autostart": "true" if b.autostart else "false",
                  "backend_command": " ".join(b.backend_command),
                  "family_paths": os.pathsep.join(b.family_paths),
                  "preview_size": str(self.preview_size)}
        for key, value in values.items():
            app.writeSetting(GROUP, key, value)

    # Families of the last session: menu entries and the docker work before the backend
    # is up.
    @property
    def _cache_path(self) -> str:
        return os.path.join(self.backend.config_dir, "families.json")

    def cache_families(self, families: list[dict[str, Any]]) -> None:
        try:
            os.makedirs(self.backend.config_dir, exist_ok=True)
            with open(self._cache_path, "w", encoding="utf-8") as f:
                json.dump(families, f)
        except OSError:
            pass  # a cache: the next session asks the backend again

    def cached_families(self) -> list[dict[str, Any]]:
        try:
            with open(self._cache_path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return []
        return data if isinstance(data, list) else []
