"""installers/install.py's decisions on fake folder trees for Linux, macOS and Windows:
where things go, which editors and Pythons are found, which torch is chosen, and that a
re-run upgrades in place and --uninstall removes exactly what was written. The machine is
a `Platform` over a temporary folder, with its own `which` and `run`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "installers"))
import plugin_common  # noqa: E402
from dni_install import backend, editors, locations, plugins, torch_choice  # noqa: E402
from dni_install.plan import Installer, Options  # noqa: E402
from dni_install.platform import Platform  # noqa: E402
from dni_install.record import InstallRecord  # noqa: E402


def machine(tmp_path: Path, system: str = "linux", arch: str = "x86_64",
            env: dict[str, str] | None = None, programs: dict[str, str] | None = None,
            outputs: dict[str, str] | None = None) -> Platform:
    """A Platform whose / is tmp/root and whose home is tmp/home; `programs` maps names to
    paths `which` finds, `outputs` maps a program's path to what it prints."""
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    found, printed = dict(programs or {}), dict(outputs or {})

    def run(argv: Sequence[str]) -> str | None:
        return printed.get(argv[0])

    return Platform(system=system, machine=arch, home=home, env=dict(env or {}), root=root,
                    which=found.get, run=run)


def touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- where things go -----------------------------------------------------------------------

def test_data_folder_per_system(tmp_path: Path) -> None:
    linux = machine(tmp_path)
    assert locations.data_dir(linux) == linux.home / ".local" / "share" / "dni"
    xdg = machine(tmp_path, env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert locations.data_dir(xdg) == tmp_path / "xdg" / "dni"
    mac = machine(tmp_path, "darwin", "arm64")
    assert locations.data_dir(mac) == mac.home / "Library" / "Application Support" / "dni"
    win = machine(tmp_path, "win32", "AMD64", env={"LOCALAPPDATA": str(tmp_path / "Local")})
    assert locations.data_dir(win) == tmp_path / "Local" / "dni"
    assert locations.venv_dni(Path("v"), win) == Path("v/Scripts/dni.exe")
    assert locations.venv_python(Path("v"), linux) == Path("v/bin/python")


# -- which editors, which Pythons ----------------------------------------------------------

def test_linux_distribution_krita_appimages_and_flatpak(tmp_path: Path) -> None:
    p = machine(tmp_path)
    touch(p.root / "usr/bin/krita")
    touch(p.root / "usr/lib/x86_64-linux-gnu/kritaplugins/kritapykrita.so",
          b"\x7fELF...libQt5Core.so.5\x00libpython3.11.so.1.0\x00...")
    touch(p.home / "Applications/krita-5.2.6-x86_64.appimage")
    touch(p.home / "Downloads/krita-6.0.1-x86_64.AppImage")
    touch(p.home / "Downloads/notes-krita.txt")
    flatpak = p.root / "var/lib/flatpak/app/org.kde.krita/current/active/files"
    (flatpak / "lib/python3.12/site-packages").mkdir(parents=True)

    kritas = editors.find_kritas(p)
    kinds = {(k.kind, tuple(k.pythons)) for k in kritas}
    assert kinds == {("distribution", ("3.11",)), ("AppImage", ("3.10",)),
                     ("AppImage", ("3.13",)), ("Flatpak", ("3.12",))}
    targets = {t.folder: t for t in editors.krita_targets(p)}
    user = p.home / ".local/share/krita/pykrita"
    box = p.home / ".var/app/org.kde.krita/data/krita/pykrita"
    assert set(targets) == {user, box}
    # The distribution's Krita and both AppImages share one folder: pyzmq for all three.
    assert targets[user].pythons == ["3.10", "3.11", "3.13"]
    assert targets[user].kritarc == p.home / ".config/kritarc"
    assert targets[box].pythons == ["3.12"]
    assert targets[box].kritarc == p.home / ".var/app/org.kde.krita/config/kritarc"


def test_linux_gimp_3_runs_the_system_python_and_gimp_2_is_left_out(tmp_path: Path) -> None:
    p = machine(tmp_path, programs={"gimp": "/usr/bin/gimp", "python3": "/usr/bin/python3"},
                outputs={"/usr/bin/gimp": "GNU Image Manipulation Program version 3.2.6\n",
                         "/usr/bin/python3": "3.13\n"})
    (target,) = editors.gimp_targets(p)
    assert target.folder == p.home / ".config/GIMP/3.2/plug-ins"
    assert target.pythons == ["3.13"] and target.pythons_detected
    old = machine(tmp_path, programs={"gimp": "/usr/bin/gimp"},
                  outputs={"/usr/bin/gimp": "GNU Image Manipulation Program version 2.10.34"})
    assert editors.gimp_targets(old) == []


def test_flatpak_gimp_uses_its_runtime_python_and_its_own_folder(tmp_path: Path) -> None:
    p = machine(tmp_path)
    user_flatpak = p.home / ".local/share/flatpak"
    (user_flatpak / "app/org.gimp.GIMP/current/active/files/bin").mkdir(parents=True)
    (user_flatpak / "runtime/org.gnome.Platform/x86_64/48/active/files/lib/python3.12"
     ).mkdir(parents=True)
    (target,) = editors.gimp_targets(p)
    assert target.folder == p.home / ".var/app/org.gimp.GIMP/config/GIMP/3.0/plug-ins"
    assert target.pythons == ["3.12"]


def test_windows_official_builds(tmp_path: Path) -> None:
    programs = tmp_path / "Program Files"
    env = {"ProgramFiles": str(programs), "APPDATA": str(tmp_path / "Roaming"),
           "LOCALAPPDATA": str(tmp_path / "Local")}
    p = machine(tmp_path, "win32", "AMD64", env=env)
    touch(programs / "Krita (x64)/bin/krita.exe")
    touch(programs / "Krita (x64)/bin/python310.dll")
    touch(programs / "GIMP 3/bin/gimp-3.0.exe")
    touch(programs / "GIMP 3/bin/python3.dll")  # the stable-ABI shim names no version
    (programs / "GIMP 3/lib/python3.12/site-packages").mkdir(parents=True)

    (krita,) = editors.krita_targets(p)
    assert krita.folder == tmp_path / "Roaming/krita/pykrita"
    assert krita.kritarc == tmp_path / "Local/kritarc"
    assert krita.pythons == ["3.10"]
    (gimp,) = editors.gimp_targets(p)
    assert gimp.folder == tmp_path / "Roaming/GIMP/3.0/plug-ins"
    assert gimp.pythons == ["3.12"]


def test_macos_app_bundles(tmp_path: Path) -> None:
    p = machine(tmp_path, "darwin", "arm64")
    (p.root / "Applications/krita.app/Contents/Frameworks/Python.framework/Versions/3.10/lib"
     ).mkdir(parents=True)
    (p.home / "Applications/GIMP.app/Contents/Resources/lib/python3.11").mkdir(parents=True)
    (krita,) = editors.krita_targets(p)
    support = p.home / "Library/Application Support"
    assert (krita.folder, krita.pythons) == (support / "krita/pykrita", ["3.10"])
    assert krita.kritarc == p.home / "Library/Preferences/kritarc"
    (gimp,) = editors.gimp_targets(p)
    assert (gimp.folder, gimp.pythons) == (support / "GIMP/3.0/plug-ins", ["3.11"])


def test_no_editor_found_means_no_target_and_the_plan_says_so(tmp_path: Path) -> None:
    p = machine(tmp_path)
    assert editors.krita_targets(p) == [] and editors.gimp_targets(p) == []
    plan = Installer(p, Options(prefix=tmp_path / "dni")).plan()
    assert "no Krita found: no Krita plugin" in plan
    assert "no GIMP 3 found: no GIMP plug-in" in plan
    assert not (tmp_path / "dni").exists(), "planning writes nothing"


def test_a_krita_folder_without_a_found_program_still_gets_the_plugin(tmp_path: Path) -> None:
    """Krita has run for this user (its folder exists) but its program is somewhere we do
    not look: install there, with pyzmq for every Python Krita builds have shipped."""
    p = machine(tmp_path)
    (p.home / ".local/share/krita").mkdir(parents=True)
    (target,) = editors.krita_targets(p)
    assert not target.pythons_detected
    assert target.pythons == list(editors.KRITA_PYTHONS)


# -- which torch ---------------------------------------------------------------------------

NVIDIA = "GPU 0: NVIDIA GeForce RTX 4070 (UUID: GPU-1234)\n"
ROCM = "Agent 2\n  Name:                    gfx1100\n  Marketing Name: Radeon RX 7900\n"


@pytest.mark.parametrize("system, arch, programs, outputs, variant, index", [
    ("linux", "x86_64", {"nvidia-smi": "/usr/bin/nvidia-smi"},
     {"/usr/bin/nvidia-smi": NVIDIA}, "cuda", None),
    ("win32", "AMD64", {"nvidia-smi": "C:/nvidia-smi.exe"}, {"C:/nvidia-smi.exe": NVIDIA},
     "cuda", torch_choice.CUDA_INDEX),
    ("linux", "x86_64", {"rocminfo": "/opt/rocm/bin/rocminfo"},
     {"/opt/rocm/bin/rocminfo": ROCM}, "rocm", torch_choice.ROCM_INDEX),
    ("darwin", "arm64", {}, {}, "mps", None),
    ("linux", "x86_64", {}, {}, "cpu", torch_choice.CPU_INDEX),
    ("win32", "AMD64", {}, {}, "cpu", torch_choice.CPU_INDEX),
    # nvidia-smi installed but without a GPU (it fails): CPU.
    ("linux", "x86_64", {"nvidia-smi": "/usr/bin/nvidia-smi"}, {}, "cpu",
     torch_choice.CPU_INDEX),
])
def test_torch_follows_the_gpu(tmp_path: Path, system: str, arch: str,
                               programs: dict[str, str], outputs: dict[str, str], variant: str,
                               index: str | None) -> None:
    choice = torch_choice.choose(machine(tmp_path, system, arch, programs=programs,
                                         outputs=outputs))
    assert (choice.variant, choice.index_url) == (variant, index)
    assert choice.reason and choice.variant in choice.describe()


def test_rocm_folder_without_rocminfo_output_still_means_rocm(tmp_path: Path) -> None:
    p = machine(tmp_path)
    (p.root / "opt/rocm").mkdir(parents=True)
    choice = torch_choice.choose(p)
    assert choice.variant == "rocm" and "/opt/rocm" in choice.reason


def test_asked_for_torch_beats_detection_and_impossible_asks_are_refused(tmp_path: Path
                                                                         ) -> None:
    gpu = machine(tmp_path, programs={"nvidia-smi": "/n"}, outputs={"/n": NVIDIA})
    assert torch_choice.choose(gpu, "cpu").index_url == torch_choice.CPU_INDEX
    assert torch_choice.choose(machine(tmp_path, "darwin", "arm64"), "cpu").index_url is None
    with pytest.raises(torch_choice.TorchError, match="Linux only"):
        torch_choice.choose(machine(tmp_path, "win32", "AMD64"), "rocm")
    with pytest.raises(torch_choice.TorchError, match="Intel Macs"):
        torch_choice.choose(machine(tmp_path, "darwin", "x86_64"))
    assert torch_choice.choose(machine(tmp_path, "darwin", "x86_64"), "skip").variant == "skip"
    # "index": the package index's own torch (setup.sh's default: PyPI is reachable where
    # PyTorch's index may not be), never PyTorch's CPU index.
    assert torch_choice.choose(gpu, "index").index_url is None
    assert torch_choice.choose(machine(tmp_path), "index").index_url is None


def test_pip_commands_put_torch_on_its_index_and_keep_the_users_sources(tmp_path: Path
                                                                        ) -> None:
    python = Path("/venv/bin/python")
    sources = backend.Sources(wheel=Path("/w/dni-0.1.0-py3-none-any.whl"),
                              index_url="http://127.0.0.1:9/simple")
    cpu = torch_choice.TorchChoice("cpu", torch_choice.CPU_INDEX, "test")
    argv = backend.torch_command(python, cpu, sources)
    assert argv is not None and argv[-4:] == ["--index-url", torch_choice.CPU_INDEX,
                                              "--extra-index-url", "http://127.0.0.1:9/simple"]
    assert {"torch", "torchvision"} <= set(argv)
    pypi = torch_choice.TorchChoice("cuda", None, "test")
    assert backend.torch_command(python, pypi, sources)[-2:] == [
        "--index-url", "http://127.0.0.1:9/simple"]
    assert backend.torch_command(python, torch_choice.TorchChoice("skip", None, "t"),
                                 sources) is None
    package = backend.package_command(python, sources)
    assert package[package.index("install"):] == [
        "install", "--upgrade", "/w/dni-0.1.0-py3-none-any.whl", "--index-url",
        "http://127.0.0.1:9/simple"]


def test_a_given_torch_index_beats_the_choices(tmp_path: Path) -> None:
    sources = backend.Sources(torch_index_url="http://127.0.0.1:9/simple")
    installer = Installer(machine(tmp_path), Options(sources=sources, torch="cpu"))
    choice = installer.torch()
    assert (choice.variant, choice.index_url) == ("cpu", "http://127.0.0.1:9/simple")
    assert "cpu build from http://127.0.0.1:9/simple" in installer.plan()[1]
    # A given package index is the only source: torch comes from it too.
    only = Installer(machine(tmp_path), Options(sources=backend.Sources(
        index_url="http://127.0.0.1:7/simple")))
    assert only.torch().index_url == "http://127.0.0.1:7/simple"
    assert Installer(machine(tmp_path), Options()).torch().index_url == torch_choice.CPU_INDEX


def test_the_venv_is_made_from_a_new_enough_python(tmp_path: Path) -> None:
    p = machine(tmp_path, programs={"python3.12": "/usr/bin/python3.12"})
    assert backend.base_python(p, "/usr/bin/python3.9", (3, 9)) == "/usr/bin/python3.12"
    assert backend.base_python(p, "/py311", (3, 11)) == "/py311"
    with pytest.raises(backend.InstallError, match="3.11 or newer"):
        backend.base_python(machine(tmp_path), "/usr/bin/python3.9", (3, 9))


# -- install, upgrade in place, uninstall --------------------------------------------------

class FakeRunner:
    """Stands in for pip and venv: creates the venv's python, records every command."""

    def __init__(self, venv_python: Path) -> None:
        self.venv_python = venv_python
        self.commands: list[list[str]] = []

    def __call__(self, argv: Sequence[str], say: object, what: str) -> None:
        self.commands.append(list(argv))
        if "venv" in argv:
            touch(self.venv_python)


class FakePlugins:
    """Stages a small plugin folder per editor (pyzmq vendoring is tested elsewhere)."""

    def __init__(self, release: str) -> None:
        self.release = release
        self.staged: list[tuple[str, list[str]]] = []

    def stage(self, editor: str, dest: Path, pythons: Sequence[str],
              settings: dict[str, object]) -> None:
        name = plugins.PLUGIN_NAMES[editor]
        touch(dest / name / "__init__.py", f"RELEASE = {self.release!r}\n".encode())
        plugin_common.write_json(dest / name / "backend.json", settings)
        if editor == "krita":
            touch(dest / f"{name}.desktop", b"[Desktop Entry]\n")
        self.staged.append((editor, list(pythons)))

    def replace_dir(self, staged: Path, target: Path) -> None:
        plugin_common.replace_dir(staged, target)


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def linux_with_both_editors(tmp_path: Path) -> Platform:
    versions = "dni 0.1.0, torch 2.13.0+cpu (cuda: no, mps: no)\n"
    p = machine(tmp_path, programs={"gimp-3.0": "/usr/bin/gimp-3.0", "python3": "/usr/bin/py3"},
                outputs={"/usr/bin/gimp-3.0": "GNU Image Manipulation Program version 3.0.4",
                         "/usr/bin/py3": "3.11\n"})
    venv_python = str(p.home / ".local/share/dni/venv/bin/python")
    p.run = lambda argv: versions if argv[0] == venv_python else {
        "/usr/bin/gimp-3.0": "GNU Image Manipulation Program version 3.0.4",
        "/usr/bin/py3": "3.11\n"}.get(argv[0])
    touch(p.root / "usr/bin/krita")
    touch(p.root / "usr/lib/x86_64-linux-gnu/kritaplugins/kritapykrita.so", b"libpython3.11.so")
    return p


def run_install(p: Platform, release: str) -> tuple[Installer, FakeRunner, FakePlugins]:
    source = FakePlugins(release)
    runner = FakeRunner(locations.venv_python(locations.data_dir(p) / "venv", p))
    installer = Installer(p, Options(torch="cpu", endpoint="tcp://127.0.0.1:6100"),
                          say=lambda _: None, runner=runner, plugin_source=lambda _: source)
    installer.install()
    return installer, runner, source


def test_install_then_upgrade_in_place_then_uninstall_exactly(tmp_path: Path) -> None:
    p = linux_with_both_editors(tmp_path)
    pykrita = p.home / ".local/share/krita/pykrita"
    kritarc = p.home / ".config/kritarc"
    touch(pykrita / "someone_elses_plugin/__init__.py", b"x = 1\n")
    touch(kritarc, b"[General]\ntheme=dark\n\n[python]\nenable_someone_elses_plugin=true\n")
    user_before = snapshot(p.home)

    installer, runner, source = run_install(p, "first")
    venv = p.home / ".local/share/dni/venv"
    assert runner.commands[0][-3:] == ["-m", "venv", str(venv)]
    assert [c[c.index("install") + 1] for c in runner.commands[1:]] == ["torch", "--upgrade"]
    assert source.staged == [("krita", ["3.11"]), ("gimp", ["3.11"])]
    gimp = p.home / ".config/GIMP/3.0/plug-ins/dni-filters"
    for plugin in (pykrita / "dni_krita", gimp):
        settings = json.loads((plugin / "backend.json").read_text())
        assert settings["command"] == [str(venv / "bin" / "dni")]
        assert settings["endpoint"] == "tcp://127.0.0.1:6100"
    assert "enable_dni_krita=true" in kritarc.read_text()
    record = InstallRecord.load(installer.record.path)
    assert set(record.paths) == {str(venv), str(pykrita / "dni_krita"),
                                 str(pykrita / "dni_krita.desktop"), str(gimp)}
    assert record.version == "0.1.0" and record.details["torch"] == "cpu"

    # Again: the venv stays (no venv command), the plugins are replaced as a whole.
    stale = touch(pykrita / "dni_krita" / "stale.py")
    installer, runner, _ = run_install(p, "second")
    assert not any("venv" in c for c in runner.commands)
    assert not stale.exists()
    assert "second" in (pykrita / "dni_krita" / "__init__.py").read_text()
    assert sorted(InstallRecord.load(installer.record.path).paths) == sorted(record.paths)
    assert kritarc.read_text().count("enable_dni_krita=true") == 1

    lines = installer.uninstall()
    assert len([line for line in lines if line.startswith("removed ")]) == 4
    assert snapshot(p.home) == user_before, "exactly what was written is gone"
    assert not (p.home / ".local/share/dni").exists()


def test_uninstall_keeps_what_the_user_put_next_to_it(tmp_path: Path) -> None:
    p = linux_with_both_editors(tmp_path)
    installer, _, _ = run_install(p, "first")
    mine = touch(installer.prefix / "my-notes.txt", b"keep me")
    installer.uninstall()
    assert mine.read_bytes() == b"keep me"
    assert not installer.venv.exists() and not installer.record.path.exists()
    assert Installer(p, Options()).uninstall() == [
        f"nothing to remove: no install record at {installer.record.path}"]


def test_a_failed_first_install_leaves_nothing_behind(tmp_path: Path) -> None:
    p = linux_with_both_editors(tmp_path)
    venv_python = locations.venv_python(locations.data_dir(p) / "venv", p)

    def runner(argv: Sequence[str], say: object, what: str) -> None:
        if "venv" in argv:
            touch(venv_python)
        if "torch" in argv:
            raise backend.InstallError("installing torch failed (exit 1): no network")

    before = snapshot(p.home)
    installer = Installer(p, Options(torch="cpu"), say=lambda _: None, runner=runner,
                          plugin_source=lambda _: FakePlugins("x"))
    with pytest.raises(backend.InstallError, match="no network"):
        installer.install()
    assert snapshot(p.home) == before and not locations.data_dir(p).exists()


def test_a_folder_that_is_not_an_environment_is_never_touched(tmp_path: Path) -> None:
    p = machine(tmp_path)
    mine = touch(tmp_path / "photos" / "holiday.png", b"png")
    runner = FakeRunner(tmp_path / "photos" / "bin" / "python")
    installer = Installer(p, Options(venv=tmp_path / "photos", torch="cpu", plugins=False),
                          say=lambda _: None, runner=runner)
    with pytest.raises(backend.InstallError, match="not a Python environment"):
        installer.install()
    assert mine.read_bytes() == b"png" and runner.commands == []


def test_a_broken_environment_is_made_again(tmp_path: Path) -> None:
    p = machine(tmp_path)  # its `run` answers nothing: the old venv's Python does not run
    venv = tmp_path / "dni" / "venv"
    touch(venv / "pyvenv.cfg", b"home = /usr/bin/python3.10-gone\n")
    assert backend.venv_state(venv, p) == "broken"
    runner = FakeRunner(venv / "bin" / "python")
    installer = Installer(p, Options(prefix=tmp_path / "dni", torch="cpu", plugins=False),
                          say=lambda _: None, runner=runner)
    with pytest.raises(backend.InstallError, match="does not import"):
        installer.install()  # the fake pip installs nothing that imports
    assert runner.commands[0][-2:] == [str(venv), "--clear"]


def test_pointing_an_installed_plugin_keeps_its_other_settings(tmp_path: Path) -> None:
    plugin = tmp_path / "dni_krita"
    plugin_common.write_json(plugin / "backend.json",
                             {"command": [], "endpoint": "tcp://127.0.0.1:6200",
                              "family_paths": ["/f"]})
    plugins.point(plugin, ["/new/venv/bin/dni"])
    assert json.loads((plugin / "backend.json").read_text()) == {
        "command": ["/new/venv/bin/dni"], "endpoint": "tcp://127.0.0.1:6200",
        "family_paths": ["/f"]}
    with pytest.raises(FileNotFoundError):
        plugins.point(tmp_path / "missing", ["/x"])


# -- the command ---------------------------------------------------------------------------

def test_command_line_refuses_a_missing_wheel_and_plans_without_writing(tmp_path: Path
                                                                         ) -> None:
    script = str(REPO / "installers" / "install.py")
    missing = subprocess.run([sys.executable, script, "--wheel", str(tmp_path / "no.whl")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    env = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    plan = subprocess.run([sys.executable, script, "--dry-run", "--torch", "cpu", "--prefix",
                           str(tmp_path / "dni")], capture_output=True, text=True, env=env,
                          timeout=60)
    assert plan.returncode == 0, plan.stderr
    assert "create the backend's environment" in plan.stdout
    assert "torch: cpu build" in plan.stdout and "asked for" in plan.stdout
    assert not (tmp_path / "dni").exists()


def test_cancelling_a_first_install_removes_what_it_began(tmp_path: Path) -> None:
    """SIGTERM (the editors' Cancel) while pip works: the new environment goes again."""
    import os
    import signal
    import time

    prefix = tmp_path / "dni"
    env = {"HOME": str(tmp_path / "home"), "PATH": os.environ["PATH"],
           "PIP_CONFIG_FILE": os.devnull}  # an index that does not answer: pip retries
    proc = subprocess.Popen([sys.executable, "-u", str(REPO / "installers" / "install.py"),
                             "--prefix", str(prefix), "--no-plugins", "--torch", "cpu",
                             "--index-url", "http://127.0.0.1:9/simple"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "[2/3]" in line:
            break
    assert (prefix / "venv" / "pyvenv.cfg").is_file(), "".join(lines)
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGTERM)
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1, rest
    assert "error: cancelled" in rest and "removed the unfinished" in rest
    assert not prefix.exists()
