"""dni_client.install_offer: when a plugin offers to install or update the backend, and
the installer run it starts (output lines, progress, log, failures). The real installer
against a local wheel and a loopback package index: tests/test_installer_real.py."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from test_server_util import serving

import dni
from dni.server import Server
from dni_client import ZmqClient, install_offer
from dni_client.settings import BackendSettings, write_json
from dni_client.version import VERSION


def test_the_plugin_and_the_backend_are_one_release() -> None:
    assert VERSION == dni.__version__


class OneFamily:
    device = "cpu"

    def families(self) -> list[dict[str, Any]]:
        return [{"name": "fake", "scale": 1}]


def test_hello_carries_the_backend_and_protocol_versions() -> None:
    srv = Server("tcp://127.0.0.1:0", devices=["cpu"], engine_factory=lambda _: OneFamily())
    with serving(srv), ZmqClient(srv.endpoints[0], timeout=10.0) as client:
        hello = client.hello()
    assert hello["version"] == dni.__version__ and hello["protocol"] == 1
    assert install_offer.backend_version(hello) == dni.__version__
    assert install_offer.decide(hello, backend_found=True) is None


def test_no_backend_means_an_install_offer() -> None:
    offer = install_offer.decide(None, backend_found=False)
    assert offer is not None and offer.kind == install_offer.INSTALL
    assert "not installed" in offer.message
    # One that exists but has not answered (still starting, or failing) is not offered over.
    assert install_offer.decide(None, backend_found=True) is None


@pytest.mark.parametrize("hello, seen", [
    ({"version": "0.0.9", "server": "dni 0.0.9"}, "0.0.9"),
    ({"server": "dni 0.0.8"}, "0.0.8"),  # a backend from before `version` was sent
    ({}, None),
])
def test_another_backend_release_means_an_update_offer(hello: dict[str, str],
                                                       seen: str | None) -> None:
    offer = install_offer.decide(hello, backend_found=True, plugin_version="0.1.0")
    assert offer is not None and offer.kind == install_offer.UPDATE
    assert offer.backend_version == seen
    assert "0.1.0" in offer.message and (seen or "unknown") in offer.message


class FakeSession:
    """What offer_for and adopt_new_backend read of a Session (unit test)."""

    def __init__(self, settings: BackendSettings, info: dict[str, Any] | None) -> None:
        self.settings = settings
        self.connected = info is not None
        self.info = info or {}
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1


def test_offer_for_a_session_and_adopting_the_new_backend(tmp_path: Path) -> None:
    settings = BackendSettings(str(tmp_path), installed={"command": [str(tmp_path / "no")]})
    offline = FakeSession(settings, None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", str(tmp_path))  # no `dni` to fall back on
        offer = install_offer.offer_for(offline)
    assert offer is not None and offer.kind == install_offer.INSTALL
    old = FakeSession(settings, {"version": "0.0.1"})
    assert install_offer.offer_for(old).kind == install_offer.UPDATE  # type: ignore[union-attr]
    write_json(str(tmp_path / "backend.json"), {"command": ["/venv/bin/dni"]})
    install_offer.adopt_new_backend(offline, str(tmp_path))
    assert settings.backend_record()["command"] == ["/venv/bin/dni"] and offline.resets == 1


def test_request_argv_names_the_source_and_the_plugins() -> None:
    request = install_offer.InstallRequest("/p/_installer/install.py", "/usr/bin/python3",
                                           index_url="http://127.0.0.1:8/simple",
                                           point=["/p"], extra_args=["--torch", "cpu"])
    assert request.argv() == ["/usr/bin/python3", "-u", "/p/_installer/install.py",
                              "--no-plugins", "--index-url", "http://127.0.0.1:8/simple",
                              "--point-plugin", "/p", "--torch", "cpu"]
    wheel = install_offer.InstallRequest("i.py", "py", wheel="/w/dni.whl", prefix="/pre")
    assert wheel.argv()[-4:] == ["--wheel", "/w/dni.whl", "--prefix", "/pre"]


def test_installer_path_is_the_plugins_copy(tmp_path: Path) -> None:
    assert install_offer.installer_path(str(tmp_path)) is None
    script = tmp_path / "_installer" / "install.py"
    script.parent.mkdir()
    script.write_text("")
    assert install_offer.installer_path(str(tmp_path)) == str(script)


def test_a_python_for_the_installer_is_found_on_path() -> None:
    found = install_offer.find_python({"PATH": str(Path(sys.executable).parent)})
    assert found is not None and Path(found).parent == Path(sys.executable).parent
    assert install_offer.find_python({"PATH": ""}) is None


def fake_installer(tmp_path: Path, body: str) -> str:
    """A stand-in for install.py that prints step lines like it (unit test of the run)."""
    script = tmp_path / "fake_install.py"
    script.write_text(textwrap.dedent(body))
    return str(script)


def test_run_passes_lines_progress_and_a_log(tmp_path: Path) -> None:
    script = fake_installer(tmp_path, """
        import sys
        print("dni-install: [1/4] creating the backend's environment")
        print("dni-install: [2/4] torch: cpu build")
        print("dni-install: [3/4] installing the backend", sys.argv[1:])
        print("dni-install: done:")
    """)
    request = install_offer.InstallRequest(script, sys.executable, wheel="/w.whl")
    run = install_offer.InstallRun(request, str(tmp_path / "logs" / "install.log"))
    run.start()
    assert run.wait(60) == 0
    lines = run.poll()
    assert len(lines) == 4 and "'--wheel', '/w.whl'" in lines[2]
    assert run.progress == 1.0 and run.failure() is None and run.poll() == []
    log = (tmp_path / "logs" / "install.log").read_text()
    assert log.startswith("$ ") and "[3/4] installing the backend" in log


def test_a_failed_run_says_why_in_plain_words(tmp_path: Path) -> None:
    script = fake_installer(tmp_path, """
        import sys
        print("dni-install: [1/3] creating the backend's environment", flush=True)
        print("    ERROR: Could not install packages due to an OSError: No space left",
              flush=True)
        print("dni-install: error: installing torch failed (exit 1):", file=sys.stderr)
        sys.exit(1)
    """)
    run = install_offer.InstallRun(install_offer.InstallRequest(script, sys.executable),
                                   str(tmp_path / "install.log"))
    run.start()
    assert run.wait(60) == 1
    assert run.progress == 0.0
    failure = run.failure()
    assert failure is not None and "installing torch failed (exit 1)." in failure
    assert "No space left" in failure
    assert str(tmp_path / "install.log") in failure


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state  # a zombie has ended


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to see the processes")
def test_cancel_ends_the_installer_and_what_it_started(tmp_path: Path) -> None:
    script = fake_installer(tmp_path, """
        import subprocess, sys, time
        pip = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("dni-install: [1/3] creating", pip.pid, flush=True)
        time.sleep(60)
    """)
    run = install_offer.InstallRun(install_offer.InstallRequest(script, sys.executable),
                                   str(tmp_path / "install.log"))
    run.start()
    deadline = time.monotonic() + 30
    while not run.lines and time.monotonic() < deadline:
        time.sleep(0.05)
        run.poll()
    child = int(run.lines[0].split()[-1])
    assert _alive(child)
    run.cancel()
    assert run.finished() and run.returncode != 0
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the installer's own child (pip) outlived Cancel"
