"""The `catalogue` and `install` ops: a real in-process server on loopback, the real
ZeroMQ client, downloads from a real HTTP server on loopback; then the new family runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from get_util import Files, catalogue_text, compact_pair, http_server, serve_pair, write_catalogue
from test_server_util import serving

from dni.server import Server
from dni_client import ServerError, ZmqClient
from dni_client.client import Event


@pytest.fixture(autouse=True)
def _quick_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNI_DOWNLOAD_STALL_S", "0.5")
    monkeypatch.setenv("DNI_DOWNLOAD_BACKOFF_S", "0.05")


@pytest.fixture
def client() -> Iterator[ZmqClient]:
    server = Server("tcp://127.0.0.1:0", devices=["cpu"])
    with serving(server):
        c = ZmqClient(server.endpoints[0], timeout=20)
        try:
            yield c
        finally:
            c.close()


def _events_until_end(client: ZmqClient, install_id: str, timeout: float = 60) -> list[Event]:
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in client.poll(100):
            assert event.job_id == install_id
            events.append(event)
            if event.kind != "progress":
                return events
    raise AssertionError(f"no end within {timeout} s: {events}")


def test_catalogue_install_then_run(tmp_path, monkeypatch, client) -> None:
    pair = compact_pair()
    files = Files()
    serve_pair(files, pair)
    with http_server(files) as url:
        monkeypatch.setenv("DNI_CATALOGUE",
                           str(write_catalogue(tmp_path, catalogue_text(url, pair, "general"))))
        (listed,) = client.catalogue()
        assert listed["name"] == "general" and listed["licence"] == "BSD-3-Clause"
        assert listed["size"] == sum(map(len, pair.files.values())) and not listed["installed"]
        assert "install" in client.hello()["ops"]

        install_id = client.install("general")
        events = _events_until_end(client, install_id)
    assert events[-1].kind == "installed", events[-1]
    assert events[-1].header["verdicts"][0]["verdict"] == "correlated"
    assert [e.kind for e in events[:-1]] == ["progress"] * (len(events) - 1)
    assert events[0].stage == "started"
    assert client.catalogue()[0]["installed"]
    assert "general" in {f["name"] for f in client.families()}
    image = np.zeros((8, 8, 4), np.uint8)
    result = client.run("general", 8, 8, "rgba8", image.tobytes(), strength=0.5)
    assert (result.width, result.height) == (32, 32)


def test_install_errors_come_back_as_one_error(tmp_path, monkeypatch, client) -> None:
    pair = compact_pair()
    files = Files(trouble={f"/{pair.name}/wdn.pth": "404"})
    serve_pair(files, pair)
    with http_server(files) as url:
        monkeypatch.setenv("DNI_CATALOGUE",
                           str(write_catalogue(tmp_path, catalogue_text(url, pair, "general"))))
        events = _events_until_end(client, client.install("general"))
        assert events[-1].kind == "error" and "404" in events[-1].message
        unknown = _events_until_end(client, client.install("nonesuch"))
        assert "no family 'nonesuch'" in unknown[-1].message
    assert "general" not in {f["name"] for f in client.families()}


def test_an_install_can_be_cancelled(tmp_path, monkeypatch, client) -> None:
    pair = compact_pair()
    files = Files(trouble={f"/{pair.name}/wdn.pth": "stall-always"}, stall_s=1.0)
    serve_pair(files, pair)
    monkeypatch.setenv("DNI_DOWNLOAD_STALL_S", "5")  # a slow link, not a dead one
    with http_server(files) as url:
        monkeypatch.setenv("DNI_CATALOGUE",
                           str(write_catalogue(tmp_path, catalogue_text(url, pair, "general"))))
        install_id = client.install("general")
        time.sleep(0.5)
        client.cancel(install_id)
        events = _events_until_end(client, install_id)
    assert events[-1].kind == "error" and events[-1].code == "cancelled"
    assert "general" not in {f["name"] for f in client.families()}


def test_a_bad_install_request_is_refused(client) -> None:
    with pytest.raises(ServerError, match="'family' must be"):
        client._request({"op": "install"}, "installed")
