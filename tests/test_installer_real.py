"""installers/install.py for real on Linux, into a temporary HOME, from a local package
index on loopback (a real HTTP server serving a PEP 503 "simple" folder) and from the
wheel built from this checkout:

1. the Krita plugin alone is installed (as an artist who imported the plugin's zip), finds
   no backend, so `install_offer` offers an install; the plugin's own copy of the
   installer runs as the plugin would run it (InstallRun), installs the backend by name
   from the loopback index, and points the plugin at it; `dni families` works there, and
   the backend it starts answers `hello` with the plugin's release (no update offered);
2. install.py from the checkout, given the wheel, upgrades that install in place and puts
   the plugins into every editor it finds here; 3. --uninstall removes all of it.

Torch, honestly and without a download per run: the index serves a real CPU torch wheel,
which pip really installs into the new environment (about a minute here). The wheels come
from a cache filled once (~/.cache/dni/test-wheelhouse, or DNI_TEST_WHEELHOUSE): the CPU
torch wheel from DNI_TEST_TORCH_WHEEL, pip's find-links folders, or
download.pytorch.org/whl/cpu (190 MB, once), the rest by pip download from the configured
index. Skips, saying why, when no CPU torch wheel can be had.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_wheel import wheel  # noqa: F401  (the fixture: the wheel built from the checkout)

from dni_client import ZmqClient, install_offer, launcher
from dni_client.settings import read_json

ROOT = Path(__file__).resolve().parents[1]
TAG = f"cp{sys.version_info[0]}{sys.version_info[1]}"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
FAMILIES = {"denoise", "super-resolve", "stylize", "stylize-stroke"}

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the real install runs on Linux (CI); other systems "
                                "are covered by tests/test_installer.py's fake trees")


def _pip_env() -> dict[str, str]:
    """This machine's pip settings (its find-links, indexes) for filling the cache."""
    return dict(os.environ)


def _cpu_torch_wheel(cache: Path) -> Path | None:
    pattern = re.compile(rf"^torch-[\d.]+\+cpu-{TAG}-{TAG}-(many)?linux.*_x86_64\.whl$")
    given = os.environ.get("DNI_TEST_TORCH_WHEEL")
    if given:
        return Path(given)
    folders = [cache] + [Path(f) for f in os.environ.get("PIP_FIND_LINKS", "").split()]
    for folder in folders:
        found = sorted(f for f in folder.glob("torch-*.whl") if pattern.match(f.name)) \
            if folder.is_dir() else []
        if found:
            return found[-1]
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                           "--only-binary=:all:", "--timeout", "20", "--retries", "1",
                           "--index-url", CPU_INDEX, "--dest", str(cache), "torch"],
                          capture_output=True, text=True, timeout=1800)
    found = sorted(f for f in cache.glob("torch-*.whl") if pattern.match(f.name))
    return found[-1] if done.returncode == 0 and found else None


@pytest.fixture(scope="module")
def wheelhouse(wheel: Path) -> Path:  # noqa: F811
    """Every wheel the backend needs, with a CPU torch (filled once, then reused)."""
    cache = Path(os.environ.get("DNI_TEST_WHEELHOUSE")
                 or Path.home() / ".cache" / "dni" / "test-wheelhouse") / TAG
    cache.mkdir(parents=True, exist_ok=True)
    if platform_machine() != "x86_64":
        pytest.skip("the cached CPU torch wheel is for x86_64")
    torch_wheel = _cpu_torch_wheel(cache)
    if torch_wheel is None:
        pytest.skip("no CPU torch wheel: set DNI_TEST_TORCH_WHEEL, or allow "
                    f"{CPU_INDEX} once")
    if not (cache / torch_wheel.name).exists():
        shutil.copy2(torch_wheel, cache / torch_wheel.name)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--only-binary=:all:",
                           "--dest", str(cache), str(wheel), str(cache / torch_wheel.name)],
                          capture_output=True, text=True, timeout=1800, env=_pip_env())
    assert done.returncode == 0, done.stderr[-3000:]
    for old in cache.glob("dni-*.whl"):
        old.unlink()  # the checkout's own wheel is served fresh
    return cache


def platform_machine() -> str:
    return os.uname().machine


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def simple_index(root: Path, wheels: list[Path]) -> None:
    """A PEP 503 'simple' tree: /simple/<project>/index.html linking /files/<wheel>."""
    files = root / "files"
    files.mkdir(parents=True)
    projects: dict[str, list[str]] = {}
    for w in wheels:
        (files / w.name).symlink_to(w)
        projects.setdefault(_normalize(w.name.split("-")[0]), []).append(w.name)
    for project, names in projects.items():
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True)
        links = "".join(f'<a href="../../files/{n}">{n}</a>\n' for n in sorted(names))
        page.write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def index_url(wheelhouse: Path, wheel: Path,  # noqa: F811
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("index")
    simple_index(root, sorted(wheelhouse.glob("*.whl")) + [wheel])
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        thread.join(10)


def user_env(home: Path, tmp_path: Path) -> dict[str, str]:
    """A user's session: their HOME, the system PATH, no pip settings of this machine
    (everything comes from the loopback index)."""
    return {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1",
            "DNI_WHEEL_CACHE": str(tmp_path / "pyzmq-cache")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hello_from(command: list[str], env: dict[str, str], log: Path) -> dict[str, object]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    backend = launcher.Backend(command, endpoint, log_path=str(log), env=env)
    backend.start()
    try:
        backend.wait_ready(180)
        with ZmqClient(endpoint, timeout=60) as client:
            return client.hello()
    finally:
        backend.stop()


def test_install_from_the_editor_then_upgrade_then_uninstall(
        index_url: str, wheel: Path, tmp_path: Path) -> None:  # noqa: F811
    home = tmp_path / "home"
    home.mkdir()
    env = user_env(home, tmp_path)

    # 1. The plugin alone, no backend: an install is offered.
    subprocess.run([sys.executable, str(ROOT / "installers" / "install_krita_plugin.py"),
                    "--home", str(home), "--offline", "--no-backend"], check=True,
                   capture_output=True, timeout=300, env=dict(os.environ, HOME=str(home)))
    plugin = home / ".local/share/krita/pykrita/dni_krita"
    record = read_json(str(plugin / "backend.json"))
    offer = install_offer.decide(None, launcher.find_backend(record, env) is not None)
    assert offer is not None and offer.kind == install_offer.INSTALL

    # The artist clicks: the plugin's copy of the installer runs, from the loopback index.
    installer = install_offer.installer_path(str(plugin))
    python = install_offer.find_python(env) or sys.executable
    assert installer is not None
    request = install_offer.InstallRequest(
        installer, python, index_url=index_url, point=[str(plugin)],
        extra_args=["--torch", "cpu", "--torch-index-url", index_url])
    log = tmp_path / "install.log"
    run = install_offer.InstallRun(request, str(log), env=env)
    started = time.monotonic()
    run.start()
    code = run.wait(1500)
    first_install_s = time.monotonic() - started
    assert code == 0, "\n".join(run.lines[-40:])
    assert run.poll() and run.progress == 1.0 and run.failure() is None
    venv = home / ".local/share/dni/venv"
    text = log.read_text()
    assert "[1/4] creating the backend's environment" in text
    assert "torch: cpu build from " + index_url in text
    assert "torch 2." in text and "+cpu" in text, "the CPU torch from the index"
    dni = venv / "bin" / "dni"
    assert read_json(str(plugin / "backend.json"))["command"] == [str(dni)]

    families = subprocess.run([str(dni), "families"], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)
    assert families.returncode == 0, families.stderr
    assert FAMILIES <= {line.split()[0] for line in families.stdout.splitlines() if line}
    hello = hello_from([str(dni)], launcher.clean_environment(env), tmp_path / "serve.log")
    assert install_offer.decide(hello, backend_found=True) is None, hello.get("version")

    # 2. install.py from the checkout, with the wheel: an upgrade in place, plugins too.
    upgrade = subprocess.run(
        [python, str(ROOT / "installers" / "install.py"), "--wheel", str(wheel), "--torch",
         "cpu", "--torch-index-url", index_url, "--index-url", index_url],
        capture_output=True, text=True, env=env, timeout=1500)
    assert upgrade.returncode == 0, upgrade.stdout[-3000:] + upgrade.stderr[-3000:]
    assert f"keeping {venv} (upgrading in place)" in upgrade.stdout
    record_file = home / ".local/share/dni/install-record.json"
    written = json.loads(record_file.read_text())["paths"]
    if shutil.which("krita"):
        assert str(plugin) in written
        assert read_json(str(plugin / "backend.json"))["command"] == [str(dni)]
        assert "enable_dni_krita=true" in (home / ".config/kritarc").read_text()
        assert (plugin / "_vendor" / f"{TAG}-linux_x86_64" / "zmq").is_dir()

    # 3. Uninstall: everything the record lists is gone.
    gone = subprocess.run([python, str(ROOT / "installers" / "install.py"), "--uninstall"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert gone.returncode == 0, gone.stderr
    assert not (home / ".local/share/dni").exists()
    for path in written:
        assert not Path(path).exists(), path
    if shutil.which("krita"):
        assert "enable_dni_krita" not in (home / ".config/kritarc").read_text()
    print(f"first install from the loopback index: {first_install_s:.0f} s")
