"""Who may talk to the server: loopback by default, CurveZMQ for anything else.

A key folder made by `dni keys DIR` holds::

    server.key, server.key_secret     the server's key pair (workers and broker share it)
    client.key, client.key_secret     a client key pair to copy to the editor's machine
    authorized/                       public keys of the clients the server accepts

Binding (or connecting) anything but loopback, ipc:// or inproc:// without such a folder
is refused: the server would otherwise run anybody's jobs on its GPU unencrypted.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

SERVER_NAME = "server"
CLIENT_NAME = "client"
AUTHORIZED_DIR = "authorized"
# A key pair's name becomes file names inside the key folder: no separators, no "..".
_KEY_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


class SecurityError(Exception):
    """A configuration the server refuses to run with; one line for the user."""


def is_local_endpoint(endpoint: str) -> bool:
    """True for endpoints that other machines cannot reach."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return False
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp" or ";" in rest:  # 'source;dest' syntax: judge conservatively
        return False
    host = rest.rsplit(":", 1)[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name or a host name


def wildcard_port(endpoint: str) -> str:
    """'tcp://127.0.0.1:0' asks for any free port, as in most tools (ZeroMQ spells it '*')."""
    if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        return endpoint[:-2] + ":*"
    return endpoint


@dataclass(frozen=True)
class CurveKeys:
    folder: Path
    public: bytes
    secret: bytes

    @property
    def authorized(self) -> Path:
        return self.folder / AUTHORIZED_DIR

    def client_pair(self) -> tuple[bytes, bytes]:
        """The folder's client key pair (the broker uses it towards its workers)."""
        public, secret = zmq.auth.load_certificate(self.folder / f"{CLIENT_NAME}.key_secret")
        if not secret:
            raise SecurityError(f"{self.folder}: {CLIENT_NAME}.key_secret holds no secret key")
        return public, secret


def load_keys(folder: Path) -> CurveKeys:
    """The server key pair of a `dni keys` folder; SecurityError when unusable."""
    if not zmq.has("curve"):
        raise SecurityError("this libzmq was built without CURVE support")
    secret_file = folder / f"{SERVER_NAME}.key_secret"
    if not secret_file.is_file():
        raise SecurityError(f"{folder}: no {secret_file.name} (make one with `dni keys {folder}`)")
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (OSError, ValueError) as exc:
        raise SecurityError(f"{secret_file}: unreadable key ({exc})") from None
    if not secret:
        raise SecurityError(f"{secret_file}: holds no secret key")
    authorized = folder / AUTHORIZED_DIR
    if not authorized.is_dir() or not any(authorized.glob("*.key")):
        raise SecurityError(f"{authorized}: no authorized client keys (*.key); "
                            f"`dni keys {folder}` makes one")
    return CurveKeys(folder, public, secret)


def check_endpoint(endpoint: str, keys: CurveKeys | None) -> None:
    if keys is None and not is_local_endpoint(endpoint):
        raise SecurityError(f"refusing {endpoint}: only loopback, ipc:// and inproc:// "
                            "endpoints are allowed without CurveZMQ keys "
                            "(make them with `dni keys DIR`, then pass --curve-keys DIR)")


def make_curve_server(sock: zmq.Socket, keys: CurveKeys) -> None:
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True


def make_curve_client(sock: zmq.Socket, keys: CurveKeys) -> None:
    public, secret = keys.client_pair()
    sock.curve_serverkey = keys.public
    sock.curve_publickey = public
    sock.curve_secretkey = secret


def start_authenticator(context: zmq.Context, keys: CurveKeys) -> ThreadAuthenticator:
    """ZAP handler for the context: accept only clients whose key is in authorized/."""
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(keys.authorized))
    return auth


def create_keys(folder: Path, client_name: str = CLIENT_NAME) -> list[Path]:
    """Make the server pair (if missing) and a client pair, and authorize the client.

    Returns the files written. Secret files are readable by their owner only.
    """
    if not _KEY_NAME.fullmatch(client_name):
        raise SecurityError(f"client name {client_name!r}: use 1-64 letters, digits, '_', "
                            "'-' or '.', not starting with '.' (it names files in the folder)")
    folder.mkdir(parents=True, exist_ok=True)
    authorized = folder / AUTHORIZED_DIR
    authorized.mkdir(exist_ok=True)
    written: list[Path] = []
    names = [client_name]
    if not (folder / f"{SERVER_NAME}.key_secret").exists():
        names.insert(0, SERVER_NAME)
    for name in names:
        if (folder / f"{name}.key_secret").exists():
            raise SecurityError(f"{folder / (name + '.key_secret')} exists; not overwriting it")
        public_file, secret_file = zmq.auth.create_certificates(folder, name)
        os.chmod(secret_file, 0o600)
        written += [Path(public_file), Path(secret_file)]
    client_public = folder / f"{client_name}.key"
    shutil.copyfile(client_public, authorized / client_public.name)
    written.append(authorized / client_public.name)
    return written
