"""Loopback by default, CurveZMQ otherwise: refusals, `dni keys`, handshakes."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth
from test_server_util import Process, run_command, serve

from dni.server.__main__ import main
from dni_client import ConnectionLost, ZmqClient


def keys_command(*args: str) -> int:
    """`dni keys` in this process (a child would spend seconds importing torch)."""
    return main(["keys", *args])


def test_remote_bind_refused_without_keys() -> None:
    dni = Path(sys.executable).with_name("dni")  # the installed `dni` command, if any
    if dni.exists():
        done = subprocess.run([str(dni), "serve", "--endpoint", "tcp://0.0.0.0:0"],
                              capture_output=True, text=True, timeout=120, check=False)
    else:
        done = run_command("serve", "--endpoint", "tcp://0.0.0.0:0")
    assert done.returncode == 2
    assert "refusing tcp://0.0.0.0:0" in done.stderr and "--curve-keys" in done.stderr
    assert "listening" not in done.stdout


@pytest.mark.parametrize("args", [
    ["serve", "--endpoint", "tcp://*:0"],
    ["serve", "--endpoint", "tcp://[::]:0"],
    ["serve", "--connect", "tcp://0.0.0.0:5558"],
    ["broker", "--frontend", "tcp://0.0.0.0:0", "--backend", "tcp://127.0.0.1:0"],
    ["broker", "--frontend", "tcp://127.0.0.1:0", "--backend", "tcp://*:0"],
])
def test_other_remote_endpoints_refused_without_keys(args: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert "refusing" in err and "listening" not in out


def test_keys_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "keys"
    assert keys_command(str(folder)) == 0
    for name in ("server.key", "server.key_secret", "client.key", "client.key_secret",
                 "authorized/client.key"):
        assert (folder / name).is_file(), name
    for secret in folder.glob("*.key_secret"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    server_public = (folder / "server.key").read_bytes()
    assert keys_command(str(folder)) == 2  # never overwrites a secret
    assert "exists" in capsys.readouterr().err
    assert keys_command(str(folder), "--client", "laptop") == 0
    assert (folder / "authorized" / "laptop.key").is_file()
    assert (folder / "server.key").read_bytes() == server_public


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "", "a\\b", "x" * 65])
def test_keys_refuses_client_names_that_are_not_plain_file_names(
        tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "keys"
    assert keys_command(str(folder), "--client", name) == 2
    assert "client name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # nothing written anywhere


def test_curve_keys_without_authorized_clients_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "keys"
    assert keys_command(str(folder)) == 0
    (folder / "authorized" / "client.key").unlink()
    assert main(["serve", "--curve-keys", str(folder), "--endpoint", "tcp://127.0.0.1:0"]) == 2
    assert "authorized" in capsys.readouterr().err


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("curve") / "keys"
    assert keys_command(str(folder)) == 0
    return folder


@pytest.fixture(scope="module")
def curve_server(keys: Path, tiny_family_dir: Path) -> Iterator[Process]:
    # Bound on every interface: allowed because keys are configured. The tests only ever
    # connect to it through loopback.
    with serve(tiny_family_dir, "--curve-keys", str(keys), endpoint="tcp://0.0.0.0:0") as s:
        yield s


def loopback(server: Process) -> str:
    port = server.endpoint.rsplit(":", 1)[1]
    return f"tcp://127.0.0.1:{port}"


def test_curve_handshake_with_the_right_keys(curve_server: Process, keys: Path) -> None:
    with ZmqClient(loopback(curve_server), server_public_key=str(keys / "server.key"),
                client_keys_dir=str(keys), timeout=20.0) as client:
        hello = client.hello()
        assert hello["curve"] is True
        result = client.run("identity", 4, 4, "grey8", bytes(range(16)), strength=0.5)
        assert result.pixels == bytes(range(16))
    # The key as a Z85 string works as well.
    public, _ = zmq.auth.load_certificate(keys / "server.key")
    with ZmqClient(loopback(curve_server), server_public_key=public.decode(),
                client_keys_dir=str(keys), timeout=20.0) as client:
        assert client.families()


def test_curve_handshake_fails_with_a_wrong_server_key(curve_server: Process,
                                                       keys: Path) -> None:
    wrong_public, _ = zmq.curve_keypair()
    with ZmqClient(loopback(curve_server), server_public_key=wrong_public,
                client_keys_dir=str(keys), timeout=1.5) as client:
        with pytest.raises(ConnectionLost):
            client.hello()


def test_curve_handshake_fails_for_an_unauthorized_client(curve_server: Process, keys: Path,
                                                          tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    assert keys_command(str(stranger)) == 0  # valid keys, but not authorized
    with ZmqClient(loopback(curve_server), server_public_key=str(keys / "server.key"),
                client_keys_dir=str(stranger), timeout=1.5) as client:
        with pytest.raises(ConnectionLost):
            client.hello()


def test_plain_client_cannot_talk_to_a_curve_server(curve_server: Process) -> None:
    with ZmqClient(loopback(curve_server), timeout=1.5) as client:
        with pytest.raises(ConnectionLost):
            client.hello()
