"""Reaching an endpoint without making the editor wait: probe the port and greet whatever
answers on a thread of its own, and let the GUI thread pick up the outcome.

A silent firewall, a program that is not DNI holding the port, or a backend still
importing torch would otherwise freeze the editor for seconds on each try. The client
made here is handed to the caller once the thread has ended (ZeroMQ sockets may change
threads when nothing else uses them meanwhile).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from . import launcher, messages
from .client import Client, ClientError
from .errors import BackendError
from .settings import BackendSettings

GREETING_TIMEOUT = 3.0  # whatever holds the port answers at once, or is not a DNI backend


class Greeting:
    def __init__(self, settings: BackendSettings,
                 client_factory: Callable[..., Client]) -> None:
        self.endpoint = settings.endpoint
        self.client: Client | None = None  # set when a DNI backend answered
        self.info: dict[str, Any] = {}
        self.families: list[dict[str, Any]] = []
        self.error: BackendError | None = None  # something answered, but not DNI
        self._settings = settings
        self._factory = client_factory
        self._done = threading.Event()
        threading.Thread(target=self._run, name="dni-greeting", daemon=True).start()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def port_closed(self) -> bool:
        """Nothing listens there (yet)."""
        return self.done and self.client is None and self.error is None

    def _run(self) -> None:
        try:
            if launcher.port_open(self.endpoint):
                self._greet()
        finally:
            self._done.set()

    def _greet(self) -> None:
        s = self._settings
        client = self._factory(s.endpoint, timeout=min(GREETING_TIMEOUT, s.timeout),
                               **s.client_options())
        try:
            self.info = client.hello()
            self.families = list(client.families())
        except ClientError as exc:
            client.close()
            self.error = BackendError(messages.not_a_backend(s.endpoint, str(exc)))
            return
        client.timeout = s.timeout  # jobs: silence means lost after this long
        self.client = client
