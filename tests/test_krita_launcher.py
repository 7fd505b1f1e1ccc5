"""dni_client.launcher (starting `dni serve` from an editor) and the Krita installer."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from dni_client import launcher
from dni_client.launcher import LaunchError

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = ROOT / "installers" / "install_krita_plugin.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A stand-in backend: `<script> serve --endpoint tcp://127.0.0.1:PORT ...` listens on the
# port and writes its environment next to itself.
FAKE_SERVE = textwrap.dedent("""
    import json, os, socket, sys, time
    port = int(sys.argv[sys.argv.index("--endpoint") + 1].rsplit(":", 1)[1])
    with open(os.path.join(os.path.dirname(__file__), "env.json"), "w") as f:
        json.dump(dict(os.environ), f)
    if os.environ.get("FAKE_FAIL"):
        print("Traceback (most recent call last):")
        print("ModuleNotFoundError: No module named 'torch'")
        sys.exit(1)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(5)
    print("listening", flush=True)
    while True:
        time.sleep(1)
""")


@pytest.fixture()
def fake_serve(tmp_path: Path) -> Path:
    script = tmp_path / "fake_serve.py"
    script.write_text(FAKE_SERVE)
    return script


def test_clean_environment_drops_what_hijacks_a_child_python(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    base = {"PATH": os.pathsep.join([str(venv / "bin"), "/usr/bin", "/tmp/.mount_krita/usr/bin"]),
            "PYTHONPATH": "/usr/lib/krita-python-libs", "PYTHONHOME": "/x",
            "VIRTUAL_ENV": str(venv), "LD_LIBRARY_PATH": "/tmp/.mount_krita/usr/lib",
            "APPDIR": "/tmp/.mount_krita", "HOME": "/home/u", "CUDA_VISIBLE_DEVICES": "0"}
    env = launcher.clean_environment(base)
    assert env["PATH"] == "/usr/bin"
    for gone in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH"):
        assert gone not in env
    assert env["HOME"] == "/home/u" and env["CUDA_VISIBLE_DEVICES"] == "0"


def test_parse_endpoint() -> None:
    assert launcher.parse_endpoint("tcp://127.0.0.1:5557") == ("tcp", "127.0.0.1", 5557)
    assert launcher.parse_endpoint("tcp://[::1]:80").host == "::1"
    assert launcher.parse_endpoint("tcp://10.0.0.5:5557").local is False
    for bad in ("127.0.0.1:5557", "tcp://host", "tcp://host:0"):
        with pytest.raises(LaunchError, match="endpoint"):
            launcher.parse_endpoint(bad)


def test_find_backend_prefers_the_recorded_command(tmp_path: Path) -> None:
    exe = tmp_path / "dni"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert launcher.find_backend({"command": [str(exe), "-x"]}) == [str(exe), "-x"]
    env = {"PATH": str(tmp_path)}
    assert launcher.find_backend({"command": ["/nowhere/dni"]}, env) == [str(exe)]
    assert launcher.find_backend({}, {"PATH": str(tmp_path / "empty")}) is None


def test_settings_round_trip(tmp_path: Path) -> None:
    from dni_client.settings import BackendSettings, read_json, write_json

    path = str(tmp_path / "a" / "backend.json")
    assert read_json(path) == {}
    write_json(path, {"command": ["dni"], "family_paths": ["/f"], "endpoint": "tcp://h:1"})
    installed = read_json(path)
    assert installed["family_paths"] == ["/f"]
    # The user's choices beat the installer's record, the environment beats both; empty
    # user values do not count.
    merged = BackendSettings.merged("/cfg", installed, {"endpoint": "", "autostart": "false",
                                                        "backend_command": ["/my/dni"]})
    assert merged.endpoint == "tcp://h:1" and merged.autostart is False
    assert merged.backend_record()["command"] == ["/my/dni"]
    assert BackendSettings.merged("/cfg", installed, {}, "tcp://e:2").endpoint == "tcp://e:2"


def test_backend_starts_with_a_clean_environment_and_stops(fake_serve: Path,
                                                           monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/krita/python")
    port = free_port()
    backend = launcher.Backend([sys.executable, str(fake_serve)], f"tcp://127.0.0.1:{port}",
                               family_paths=["/fam"])
    assert backend.argv[-4:] == ["--endpoint", f"tcp://127.0.0.1:{port}", "--family-path",
                                 "/fam"]
    backend.start()
    try:
        backend.wait_ready(timeout=20)
        assert launcher.port_open(f"tcp://127.0.0.1:{port}")
        env = json.loads((fake_serve.parent / "env.json").read_text())
        assert "PYTHONPATH" not in env
    finally:
        backend.stop()
    deadline = time.monotonic() + 5
    while launcher.port_open(f"tcp://127.0.0.1:{port}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not launcher.port_open(f"tcp://127.0.0.1:{port}")


def test_start_failure_becomes_a_hint(fake_serve: Path, tmp_path: Path) -> None:
    env = launcher.clean_environment()
    env["FAKE_FAIL"] = "1"
    backend = launcher.Backend([sys.executable, str(fake_serve)],
                               f"tcp://127.0.0.1:{free_port()}", env=env,
                               log_path=str(tmp_path / "log.txt"))
    backend.start()
    with pytest.raises(LaunchError, match="missing a package.*torch"):
        backend.wait_ready(timeout=20)


def test_missing_command_says_how_to_fix(tmp_path: Path) -> None:
    backend = launcher.Backend([str(tmp_path / "no-such-dni")], "tcp://127.0.0.1:5999")
    with pytest.raises(LaunchError, match="does not exist. Install the backend"):
        backend.start()


def test_remote_endpoints_are_not_started() -> None:
    with pytest.raises(LaunchError, match="another machine"):
        launcher.Backend(["dni"], "tcp://192.0.2.1:5557")


def test_start_failure_port_in_use() -> None:
    from dni_client import messages

    text = messages.start_failed("dni serve: cannot start the server: Address already in "
                                 "use", "tcp://127.0.0.1:5557", 1)
    assert "Another program uses the port" in text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_backend_dies_with_a_crashed_editor(fake_serve: Path, tmp_path: Path) -> None:
    """The editor process dies without stopping the backend: the kernel ends the child."""
    port = free_port()
    editor = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT / "plugin")!r})
        from dni_client.launcher import Backend
        b = Backend([sys.executable, {str(fake_serve)!r}], "tcp://127.0.0.1:{port}")
        b.start(); b.wait_ready(timeout=20)
        print(b.process.pid, flush=True)
        os._exit(0)  # a crash: no stop(), no atexit
    """)
    out = subprocess.run([sys.executable, "-c", editor], capture_output=True, text=True,
                         timeout=60)
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 5
    alive = True
    while alive and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            time.sleep(0.1)
        except ProcessLookupError:
            alive = False
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the backend outlived its editor"


def test_real_dni_serve_through_the_launcher(tiny_family_dir: Path) -> None:
    """The launcher starts the real backend; the client sees the families."""
    from dni_client import ZmqClient

    dni = Path(sys.executable).parent / "dni"
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    backend = launcher.Backend([str(dni)], endpoint, family_paths=[str(tiny_family_dir)])
    backend.start()
    try:
        backend.wait_ready(timeout=120)
        with ZmqClient(endpoint, timeout=20) as client:
            assert client.hello()["protocol"] == 1
            names = {f["name"] for f in client.families()}
        assert {"tiny", "tiny3", "tiny-x2", "identity"} <= names
    finally:
        backend.stop()
    assert not backend.running()


# -- installer -----------------------------------------------------------------------------

def _load_installer():
    import importlib.util

    spec = importlib.util.spec_from_file_location("install_krita_plugin", INSTALLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_kritarc_is_edited_in_place_and_idempotently(tmp_path: Path) -> None:
    inst = _load_installer()
    rc = tmp_path / "kritarc"
    rc.write_text("[General]\nfoo=1\n\n[python]\nenable_other=true\nenable_dni_krita=false\n"
                  "\n[Zed]\nx=y\n")
    assert inst.enable_in_kritarc(rc)
    text = rc.read_text()
    assert "enable_dni_krita=true" in text and "enable_dni_krita=false" not in text
    assert "enable_other=true" in text and "[Zed]\nx=y" in text and "foo=1" in text
    assert not inst.enable_in_kritarc(rc)  # second run: nothing to change
    fresh = tmp_path / "new" / "kritarc"
    assert inst.enable_in_kritarc(fresh)
    assert fresh.read_text() == "[python]\nenable_dni_krita=true\n"


def test_default_dirs_per_platform(tmp_path: Path) -> None:
    inst = _load_installer()
    home = tmp_path
    assert inst.default_dirs(home, "linux", use_env=False) == (
        home / ".local/share/krita", home / ".config/kritarc")
    res, rc = inst.default_dirs(home, "darwin")
    assert res == home / "Library/Application Support/krita"
    assert rc == home / "Library/Preferences/kritarc"
    res, rc = inst.default_dirs(home, "win32", use_env=False)
    assert res.name == "krita" and rc.name == "kritarc"


def test_installer_offline_is_idempotent_and_records_the_backend(tmp_path: Path) -> None:
    home = tmp_path / "home"
    argv = [sys.executable, str(INSTALLER), "--home", str(home), "--offline",
            "--no-backend", "--endpoint", "tcp://127.0.0.1:6001", "--family-path", "/f"]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    plugin = home / ".local/share/krita/pykrita/dni_krita"
    stale = plugin / "stale_module.py"
    stale.write_text("old")
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    assert not stale.exists()
    assert (plugin.parent / "dni_krita.desktop").exists()
    assert (plugin / "_lib" / "dni_client" / "client.py").exists()
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}-linux_x86_64"
    if sys.platform.startswith("linux") and os.uname().machine == "x86_64":
        assert (plugin / "_vendor" / tag / "zmq" / "__init__.py").exists()
    settings = json.loads((plugin / "backend.json").read_text())
    assert settings == {"command": [], "family_paths": ["/f"], "endpoint": "tcp://127.0.0.1:6001"}
    rc = (home / ".config" / "kritarc").read_text()
    assert rc.count("enable_dni_krita=true") == 1
    # The installed copy imports (vendored zmq + dni_client) in a clean interpreter.
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import dni_krita; "
             "import zmq, dni_client; print(zmq.__file__); print(dni_client.__file__); "
             "assert dni_krita.ZMQ_PROBLEM is None")
    out = subprocess.run([sys.executable, "-S", "-c", probe, str(plugin.parent)],
                         capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert str(plugin) in out.stdout.splitlines()[0] and str(plugin) in out.stdout


def test_installer_builds_the_import_zip(tmp_path: Path) -> None:
    out = tmp_path / "dni_krita.zip"
    subprocess.run([sys.executable, str(INSTALLER), "--zip", str(out), "--offline"],
                   check=True, capture_output=True, timeout=120)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert "dni_krita.desktop" in names and "dni_krita/__init__.py" in names
    assert "dni_krita/_lib/dni_client/mixing.py" in names
    assert any(n.startswith("dni_krita/_vendor/") and n.endswith("zmq/__init__.py")
               for n in names)
    assert not any("__pycache__" in n or n.endswith("backend.json") for n in names)


def test_vendor_tags() -> None:
    from dni_client import vendoring

    assert vendoring.python_tag((3, 8), vendoring.platform_tag("linux", "x86_64")) == \
        "cp38-linux_x86_64"
    assert vendoring.python_tag("3.13", vendoring.platform_tag("win32", "AMD64")) == \
        "cp313-win_amd64"
    assert vendoring.platform_tag("darwin", "arm64") == "macosx_arm64"
    assert vendoring.platform_tag("win32", "ARM64") == "win_arm64"
    assert vendoring.platform_tag("linux", "aarch64") == "linux_aarch64"
    # Every platform the plugins can name is one the installer downloads wheels for.
    inst = _load_installer()
    for system in ("linux", "win32", "darwin"):
        for machine in ("x86_64", "AMD64", "x64", "aarch64", "arm64", "ARM64"):
            assert vendoring.platform_tag(system, machine) in inst.common.PLATFORMS


# -- the plugins' Session against the real backend ---------------------------------------

@pytest.mark.parametrize("curve", [False, True], ids=["plain", "curve"])
def test_plugin_connection_starts_and_uses_the_real_backend(tiny_family_dir: Path,
                                                            tmp_path: Path, monkeypatch,
                                                            curve: bool) -> None:
    """The plugins' Session with the real client and `dni serve`: it starts the backend
    (with CurveZMQ keys if set), runs a job through tick(), and stops it."""
    sys.path.insert(0, str(ROOT / "plugin" / "krita"))
    sys.path.insert(0, str(ROOT / "tests" / "fakes"))
    try:
        from dni_krita import settings as st
        from dni_krita.plugin import INSTALLER
    finally:
        sys.path.pop(0)
        sys.path.pop(0)
    from dni_client.geometry import Rect
    from dni_client.job import Amount, JobSpec
    from dni_client.pixels import KRITA_FORMATS
    from dni_client.session import STATE_CONNECTED, Session
    from dni_client.settings import write_json

    dni = Path(sys.executable).parent / "dni"
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    record = tmp_path / "backend.json"
    write_json(str(record), {"command": [str(dni)], "family_paths": [str(tiny_family_dir)],
                             "endpoint": endpoint})
    monkeypatch.setattr(st, "BACKEND_FILE", str(record))
    monkeypatch.setattr(st, "resource_dir", lambda: str(tmp_path / "res"))
    settings = st.KritaSettings.load().backend
    extra: list[str] = []
    if curve:
        keys = tmp_path / "keys"
        subprocess.run([str(dni), "keys", str(keys)], check=True, capture_output=True,
                       timeout=60)
        settings.server_public_key = str(keys / "server.key")
        settings.client_keys_dir = str(keys)
        extra = ["--curve-keys", str(keys)]

    class CurveBackend(launcher.Backend):
        def __init__(self, command, endpoint, **kwargs):
            super().__init__(command, endpoint, extra_args=extra, **kwargs)

    conn = Session(settings, installer=INSTALLER, backend_factory=CurveBackend)
    try:
        conn.wait_connected(timeout=120)
        assert conn.state == STATE_CONNECTED and conn.backend is not None
        assert "tiny" in {f.name for f in conn.families}
        pixels = bytes([10, 20, 30, 255]) * 64
        spec = JobSpec(conn.family("identity"), Rect(0, 0, 8, 8), KRITA_FORMATS["U8"],
                       pixels, Amount(0.5, None))
        result = conn.run(spec, timeout=60)
        assert result.pixels == pixels  # identity family: exact
        assert (tmp_path / "res" / "dni" / "backend.log").exists()
    finally:
        conn.shutdown()
    deadline = time.monotonic() + 10
    while launcher.port_open(endpoint) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not launcher.port_open(endpoint)
