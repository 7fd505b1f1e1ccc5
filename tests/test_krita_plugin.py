"""The Krita plugin's logic against a fake `krita` module and the real engine.

tests/fakes/krita.py keeps pixels in Krita's byte layouts; tests/fakes/engine_client.py
answers jobs with the engine's real output. So these check the bytes that would land in a
Krita layer: placement, selections with soft edges, every RGBA depth, super-resolution,
strength maps, the "replace" path, and that faults leave the document untouched.
"""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fakes"))
sys.path.insert(0, str(ROOT / "plugin" / "krita"))

import krita as fake  # noqa: E402  (tests/fakes/krita.py)
from engine_client import EngineClient  # noqa: E402

from dni.engine import Engine  # noqa: E402
from dni.server import layouts  # noqa: E402


@pytest.fixture()
def app(tmp_path, tiny_family_dir, monkeypatch):
    """A fresh fake Krita and a plugin connection whose client runs the engine."""
    import dni_krita
    from dni_krita import plugin

    from dni_client import launcher

    k = fake.Krita.reset()
    k.app_data = str(tmp_path / "appdata")
    EngineClient.engine = Engine("cpu", [tiny_family_dir])
    EngineClient.mode = "ok"
    EngineClient.instances = []
    monkeypatch.setattr(launcher, "port_open", lambda *a, **k: True)
    plugin.replace(make_plugin())
    yield k
    plugin.replace(None)
    assert dni_krita is not None


def make_plugin(backend_factory=None):
    """The plugin's Plugin with a session whose client runs the engine in-process."""
    from dni_krita.plugin import INSTALLER, Plugin
    from dni_krita.settings import KritaSettings

    from dni_client.session import Session

    settings = KritaSettings.load()
    extra = {} if backend_factory is None else {"backend_factory": backend_factory}
    return Plugin(settings, Session(settings.backend, installer=INSTALLER,
                                    client_factory=EngineClient, **extra))


def rgba_u8(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    img[..., 3] = 255
    return img


def make_doc(app, width=40, height=30, depth="U8", image=None, model="RGBA"):
    doc = app.add_document(fake.Document(width, height, depth=depth, model=model))
    layer = doc.createNode("Paint", "paintlayer")
    doc.rootNode().addChildNode(layer, None)
    doc.setActiveNode(layer)
    if model == "RGBA":
        img = rgba_u8(width, height) if image is None else image
        layout = f"krita:{depth}"
        arr = img.astype(np.float32) / 255.0 if depth in ("F16", "F32") else img
        if depth == "U16":
            arr = img.astype(np.uint16) * 257
        layer.setPixelData(layouts.to_bytes(arr, layout), 0, 0, width, height)
    doc.undo_log.clear()
    return doc, layer


def read(layer, doc, depth="U8"):
    data = layer.pixelData(0, 0, doc.width(), doc.height())
    return layouts.to_array(data, doc.width(), doc.height(), f"krita:{depth}")


def connected():
    from dni_krita.plugin import instance

    session = instance().session
    session.wait_connected(timeout=5)
    return session


def engine_out(img, family="tiny", **kw):
    return EngineClient.engine.run(family, img, **kw)


# -- happy paths ---------------------------------------------------------------------------

def test_new_layer_above_holds_the_engine_result_and_source_is_untouched(app):
    import dni_krita

    doc, layer = make_doc(app)
    before = bytes(layer.pixelData(0, 0, 40, 30))
    new = dni_krita.run_filter("tiny", strength=0.3)
    assert new.name() == "DNI Tiny 30%"
    assert doc.rootNode().childNodes() == [layer, new]  # above the source
    assert bytes(layer.pixelData(0, 0, 40, 30)) == before
    expected = engine_out(read(layer, doc), strength=0.3)
    np.testing.assert_array_equal(read(new, doc), expected)
    assert ("add", new.name()) in doc.undo_log and not any(
        op == "remove" for op, _ in doc.undo_log)


def test_results_stack_upwards_with_names_told_apart(app):
    import dni_krita

    doc, layer = make_doc(app)
    first = dni_krita.run_filter("tiny", strength=0.3)
    second = dni_krita.run_filter("tiny", strength=0.3, layer=layer)
    third = dni_krita.run_filter("tiny", strength=0.6, layer=layer)
    assert doc.rootNode().childNodes() == [layer, first, second, third]
    assert [n.name() for n in (first, second, third)] == [
        "DNI Tiny 30%", "DNI Tiny 30% (2)", "DNI Tiny 60%"]


@pytest.mark.parametrize("depth", ["U8", "U16", "F16", "F32"])
def test_every_rgba_depth_round_trips_in_its_own_layout(app, depth):
    import dni_krita

    doc, layer = make_doc(app, 24, 20, depth=depth)
    new = dni_krita.run_filter("tiny", weights=[0.25, 0.75])
    assert (new.colorModel(), new.colorDepth()) == ("RGBA", depth)
    src = read(layer, doc, depth)
    expected = engine_out(np.array(src), weights=[0.25, 0.75])
    got = read(new, doc, depth)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    # The result differs from the source: the filter did something.
    assert np.abs(got.astype(np.float64) - src.astype(np.float64)).mean() > 0


def test_selection_limits_the_layer_with_soft_edges(app):
    import dni_krita

    doc, layer = make_doc(app, 60, 50)
    sel = fake.Selection(60, 50)
    sel.select(20, 10, 20, 20, 255)
    sel.select(20, 10, 20, 1, 128)  # a soft top edge
    doc.setSelection(sel)
    new = dni_krita.run_filter("tiny", strength=1.0)
    out = read(new, doc)
    # Outside the selection: fully transparent.
    assert out[:10].max() == 0 and out[:, :20].max() == 0 and out[30:].max() == 0
    # Inside: the engine's result on the padded crop (context from outside the selection).
    crop = read(layer, doc)[0:50, 0:60]  # padding 32 reaches the image edges here
    expected = engine_out(np.array(crop), strength=1.0)
    np.testing.assert_array_equal(out[11:30, 20:40, :3], expected[11:30, 20:40, :3])
    assert (out[11:30, 20:40, 3] == 255).all()
    # The soft edge halves the alpha (255 * 128 / 255 = 128).
    assert (out[10, 20:40, 3] == 128).all()


def test_selection_only_false_filters_the_whole_layer(app):
    import dni_krita

    doc, layer = make_doc(app)
    sel = fake.Selection(40, 30)
    sel.select(5, 5, 5, 5, 255)
    doc.setSelection(sel)
    new = dni_krita.run_filter("tiny", strength=0.5, selection_only=False)
    np.testing.assert_array_equal(read(new, doc), engine_out(read(layer, doc), strength=0.5))


def test_replace_is_a_new_layer_plus_an_undoable_removal(app):
    import dni_krita

    doc, layer = make_doc(app)
    other = doc.createNode("Top", "paintlayer")
    doc.rootNode().addChildNode(other, layer)
    doc.undo_log.clear()
    src = read(layer, doc)
    new = dni_krita.run_filter("tiny", strength=0.5, target="replace")
    assert doc.rootNode().childNodes() == [new, other]  # same place in the stack
    assert [op for op, _ in doc.undo_log] == ["add", "remove"]
    np.testing.assert_array_equal(read(new, doc), engine_out(src, strength=0.5))


def test_replace_with_selection_keeps_unselected_pixels(app):
    import dni_krita

    doc, layer = make_doc(app, 50, 40)
    sel = fake.Selection(50, 40)
    sel.select(10, 10, 10, 10, 255)
    doc.setSelection(sel)
    src = read(layer, doc)
    new = dni_krita.run_filter("tiny", strength=1.0, target="replace")
    out = read(new, doc)
    outside = np.ones((40, 50), bool)
    outside[10:20, 10:20] = False
    np.testing.assert_array_equal(out[outside], src[outside])
    assert np.abs(out[10:20, 10:20].astype(int) - src[10:20, 10:20]).max() > 0


def test_super_resolve_enlarges_the_image_and_fills_a_new_layer(app):
    import dni_krita

    doc, layer = make_doc(app, 20, 16)
    src = read(layer, doc)
    new = dni_krita.run_filter("tiny-x2", strength=0.5, sr_output="resize")
    assert (doc.width(), doc.height()) == (40, 32)
    assert ("scale", (40, 32)) in doc.undo_log
    np.testing.assert_array_equal(read(new, doc), engine_out(src, "tiny-x2", strength=0.5))


def test_super_resolve_into_a_new_document_leaves_the_source_alone(app):
    import dni_krita
    from dni_krita.plugin import instance

    doc, layer = make_doc(app, 20, 16)
    before = bytes(layer.pixelData(0, 0, 20, 16))
    new = dni_krita.run_filter("tiny-x2", strength=0.0, sr_output="new_document")
    assert (doc.width(), doc.height()) == (20, 16) and doc.undo_log == []
    assert bytes(layer.pixelData(0, 0, 20, 16)) == before
    out_doc = app.documents()[-1]
    assert out_doc is not doc and (out_doc.width(), out_doc.height()) == (40, 32)
    assert out_doc in app.window.views
    got = layouts.to_array(new.pixelData(0, 0, 40, 32), 40, 32, "krita:U8")
    expected = engine_out(layouts.to_array(before, 20, 16, "krita:U8"), "tiny-x2",
                          strength=0.0)
    np.testing.assert_array_equal(got, expected)
    assert instance().last_job is not None and instance().last_job.scale == 2


def test_strength_map_from_a_grey_layer_is_sent_per_pixel(app):
    import dni_krita

    doc, layer = make_doc(app, 32, 24)
    grey = np.zeros((24, 32, 4), np.uint8)
    grey[:, 16:, :3] = 255
    grey[..., 3] = 255
    mapnode = doc.createNode("map", "paintlayer")
    doc.rootNode().addChildNode(mapnode, layer)
    mapnode.setPixelData(layouts.to_bytes(grey, "krita:U8"), 0, 0, 32, 24)
    new = dni_krita.run_filter("tiny", layer=layer, strength_map="map")
    sent = EngineClient.instances[-1].submitted[-1]
    assert sent["strength"] is None and sent["weights"] is None
    plane = np.frombuffer(sent["strength_map"], np.uint8).reshape(24, 32)
    assert (plane[:, :16] == 0).all() and (plane[:, 16:] == 255).all()
    src = read(layer, doc)
    out = read(new, doc)
    weak = engine_out(src, strength=0.0)
    strong = engine_out(src, strength=1.0)
    # Far from the boundary each half matches its end of the axis (within rounding).
    assert np.abs(out[:, :10].astype(int) - weak[:, :10]).max() <= 1
    assert np.abs(out[:, 22:].astype(int) - strong[:, 22:]).max() <= 1


def test_strength_map_from_the_selection(app):
    import dni_krita

    doc, layer = make_doc(app, 20, 20)
    sel = fake.Selection(20, 20)
    sel.select(0, 0, 10, 20, 200)
    doc.setSelection(sel)
    dni_krita.run_filter("tiny", strength_map="selection")
    sent = EngineClient.instances[-1].submitted[-1]
    # The selection is the map here, so the whole layer is sent.
    assert (sent["width"], sent["height"]) == (20, 20)
    plane = np.frombuffer(sent["strength_map"], np.uint8).reshape(20, 20)
    assert (plane[:, :10] == 200).all() and (plane[:, 10:] == 0).all()


def test_pixel_blend_mode_is_passed_on(app):
    import dni_krita

    doc, layer = make_doc(app)
    new = dni_krita.run_filter("tiny3", weights=[0.2, 0.3, 0.5], mode="pixel")
    assert "pixel blend" in new.name()
    np.testing.assert_array_equal(
        read(new, doc), engine_out(read(layer, doc), "tiny3", weights=[0.2, 0.3, 0.5],
                                   mode="pixel"))


# -- bad input and faults ----------------------------------------------------------------

def test_no_document_and_no_layer(app):
    import dni_krita

    with pytest.raises(dni_krita.FilterError, match="Open an image"):
        dni_krita.run_filter("tiny")
    doc = app.add_document(fake.Document(10, 10))
    with pytest.raises(dni_krita.FilterError, match="no active layer"):
        dni_krita.run_filter("tiny")
    assert doc.undo_log == []


@pytest.mark.parametrize("kind,words", [("grouplayer", "group"),
                                        ("vectorlayer", "Convert ▸ to Paint Layer")])
def test_group_and_vector_layers_are_refused_with_a_fix(app, kind, words):
    import dni_krita

    doc = app.add_document(fake.Document(10, 10))
    node = doc.createNode("L", kind)
    doc.rootNode().addChildNode(node, None)
    doc.setActiveNode(node)
    doc.undo_log.clear()
    with pytest.raises(dni_krita.FilterError, match=words):
        dni_krita.run_filter("tiny")
    assert doc.undo_log == []


@pytest.mark.parametrize("model,depth,words", [("CMYKA", "U8", "CMYK"),
                                               ("LABA", "U16", "L\\*a\\*b")])
def test_cmyk_and_lab_say_what_to_do(app, model, depth, words):
    import dni_krita

    doc, _ = make_doc(app, 8, 8, depth=depth, model=model)
    with pytest.raises(dni_krita.FilterError, match=words) as info:
        dni_krita.run_filter("tiny")
    assert "Convert Image Color Space" in str(info.value)
    assert doc.undo_log == []


def test_empty_selection_is_refused(app):
    import dni_krita

    doc, _ = make_doc(app)
    doc.setSelection(fake.Selection(40, 30))  # nothing selected
    with pytest.raises(dni_krita.FilterError, match="selection is empty"):
        dni_krita.run_filter("tiny")
    assert doc.undo_log == []


def test_unknown_family_lists_the_installed_ones(app):
    import dni_krita

    make_doc(app)
    with pytest.raises(dni_krita.FilterError, match="tiny3"):
        dni_krita.run_filter("nope")


def test_weights_must_be_convex(app):
    import dni_krita

    doc, _ = make_doc(app)
    with pytest.raises(dni_krita.FilterError, match="sum to 1"):
        dni_krita.run_filter("tiny", weights=[0.5, 0.6])
    with pytest.raises(dni_krita.FilterError, match="2 weights"):
        dni_krita.run_filter("tiny", weights=[1.0])
    # The rules are dni_client.mixing's (as in GIMP and in the engine) ...
    with pytest.raises(dni_krita.FilterError, match="negative"):
        dni_krita.run_filter("tiny", weights=[-0.5, 1.5])
    with pytest.raises(dni_krita.FilterError, match="finite"):
        dni_krita.run_filter("tiny", weights=[float("nan"), 1.0])
    # ... and a script giving both is told so.
    with pytest.raises(dni_krita.FilterError, match="not both"):
        dni_krita.run_filter("tiny", strength=0.3, weights=[0.5, 0.5])
    assert doc.undo_log == []


def test_backend_gone_mid_job_leaves_the_document_untouched(app):
    import dni_krita

    doc, layer = make_doc(app)
    before = bytes(layer.pixelData(0, 0, 40, 30))
    EngineClient.mode = "lost"
    with pytest.raises(dni_krita.FilterError, match="stopped answering"):
        dni_krita.run_filter("tiny", strength=0.5)
    assert doc.rootNode().childNodes() == [layer] and doc.undo_log == []
    assert bytes(layer.pixelData(0, 0, 40, 30)) == before


def test_a_lost_job_ends_the_other_pending_jobs_too(app):
    """The client gives up one job (its server vanished): every job pending on that
    connection ends at once, instead of waiting for events that cannot come."""
    from dni_krita.plugin import instance

    doc, layer = make_doc(app)
    session = connected()
    EngineClient.mode = "hold"
    errors = []
    for strength in (0.2, 0.4):
        instance().start_job(doc, layer, session.family("tiny"), options(strength),
                             lambda new, error: errors.append(error))
    client = EngineClient.instances[-1]
    first = next(iter(client.jobs))
    client.jobs.pop(first)
    client.lost_now = [first]  # only this one is reported lost
    session.tick()
    assert len(errors) == 2 and all("stopped answering" in e for e in errors)
    assert session.current is None and not session.connected


def test_cancel_from_progress_leaves_the_document_untouched(app):
    import dni_krita
    doc, layer = make_doc(app)
    EngineClient.mode = "hold"
    seen = []

    def on_progress(fraction):
        seen.append(fraction)
        return True  # cancel

    with pytest.raises(dni_krita.FilterError, match="Cancelled"):
        dni_krita.run_filter("tiny", strength=0.5, on_progress=on_progress)
    assert seen and seen[0] == 0.5
    assert doc.rootNode().childNodes() == [layer] and doc.undo_log == []


def options(strength=None, weights=None, **kw):
    from dni_krita import core

    from dni_client.job import Amount

    return core.Options(Amount(strength, weights), **kw)


def test_source_layer_deleted_while_working(app):
    from dni_krita.plugin import instance

    doc, layer = make_doc(app)
    results = []
    running = instance().start_job(doc, layer, connected().family("tiny"), options(0.5),
                                   lambda lay, err: results.append(err))
    layer.remove()
    doc.undo_log.clear()
    connected().tick()
    assert running.done and results and "deleted" in results[0]
    assert doc.undo_log == []


def test_async_job_reports_progress_and_applies_on_the_gui_tick(app):
    from dni_krita.plugin import instance

    doc, layer = make_doc(app)
    done = []
    events = []
    session = connected()
    session.job_changed.connect(lambda handle: events.append(handle.done))
    instance().start_job(doc, layer, session.family("tiny"), options(0.2),
                         lambda lay, err: done.append((lay, err)))
    assert session.current is not None and done == []  # nothing applied before the tick
    session.tick()
    (new, err), = done
    assert err is None and new.name() == "DNI Tiny 20%" and session.current is None
    last = instance().last_run
    assert last.family == "tiny" and last.layer is new and events == [False, True]


def test_backend_process_death_fails_jobs_at_once(app):
    """A backend we started that dies: pending jobs fail on the next tick, with the log."""
    from dni_krita.plugin import instance

    class DeadBackend:
        def running(self):
            return False

        def returncode(self):
            return 1

        def log_tail(self):
            return "Traceback...\nModuleNotFoundError: No module named 'torch'"

    doc, layer = make_doc(app)
    errors = []
    session = connected()
    instance().start_job(doc, layer, session.family("tiny"), options(0.5),
                         lambda lay, err: errors.append(err))
    EngineClient.mode = "hold"
    session.backend = DeadBackend()
    session.tick()
    assert errors and "not changed" in errors[0] and "No module named" in errors[0]
    assert doc.rootNode().childNodes() == [layer]


def test_float_formats_pack_like_krita(app):
    """F16 layers are R, G, B, A halves; the first sample is red."""
    doc, layer = make_doc(app, 2, 1, depth="F16",
                          image=np.array([[[255, 0, 0, 255], [0, 0, 255, 255]]], np.uint8))
    raw = layer.pixelData(0, 0, 2, 1)
    assert struct.unpack("<8e", raw) == (1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0)


# -- connecting and starting the backend -------------------------------------------------

class FakeBackend:
    """Records how the plugin starts the backend; 'ready' after `polls` checks."""

    made: list = []

    def __init__(self, command, endpoint, *, family_paths=(), log_path=None, detached=False):
        self.command, self.endpoint, self.family_paths = command, endpoint, family_paths
        self.log_path = log_path
        self.started = self.stopped = False
        self.polls = 2
        FakeBackend.made.append(self)

    def start(self):
        self.started = True

    def running(self):
        return self.started and not self.stopped

    def ready(self):
        self.polls -= 1
        return self.listening

    @property
    def listening(self):
        return self.started and not self.stopped and self.polls <= 0

    @staticmethod
    def port_open(endpoint, **_):
        """launcher.port_open as these fakes make it: open once a started one is ready."""
        return any(b.endpoint == endpoint and b.listening for b in FakeBackend.made)

    def stop(self):
        self.stopped = True

    def log_tail(self):
        return ""

    def returncode(self):
        return None


def settle(session, until, timeout=10.0):
    """Step the session as the GUI timer does (connecting runs on a thread) until
    `until()`; errors raise as they would in the dialog."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, session.message
        session.step()
        time.sleep(0.01)


def test_the_plugin_starts_the_recorded_backend_when_nothing_answers(app, tmp_path,
                                                                      monkeypatch):
    from dni_krita import settings as st

    from dni_client import launcher
    from dni_client.session import STATE_CONNECTED, STATE_STARTING
    from dni_client.settings import write_json

    exe = tmp_path / "dni"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    record = tmp_path / "backend.json"
    write_json(str(record), {"command": [str(exe)], "family_paths": ["/fam"],
                             "endpoint": "tcp://127.0.0.1:6123"})
    monkeypatch.setattr(st, "BACKEND_FILE", str(record))
    monkeypatch.setattr(launcher, "port_open", FakeBackend.port_open)
    FakeBackend.made = []
    conn = make_plugin(FakeBackend).session
    assert conn.step() is False  # the endpoint is probed off the GUI thread
    settle(conn, lambda: conn.state == STATE_STARTING)
    backend = FakeBackend.made[0]
    assert backend.command == [str(exe)] and backend.endpoint == "tcp://127.0.0.1:6123"
    assert backend.family_paths == ["/fam"] and backend.started
    assert backend.log_path.startswith(app.app_data)  # <Krita resources>/dni/backend.log
    settle(conn, lambda: conn.state != STATE_STARTING)
    assert backend.polls <= 0  # connected only once it listened
    assert conn.state == STATE_CONNECTED and "tiny" in {f.name for f in conn.families}
    assert conn.client.kwargs["timeout"] <= 3.0 and conn.client.timeout == 20.0
    conn.shutdown()
    assert backend.stopped  # Krita quits: the backend goes with it
    assert len(FakeBackend.made) == 1


def test_an_endpoint_change_starts_the_backend_on_the_new_endpoint(app, tmp_path,
                                                                   monkeypatch):
    """DNI Settings ▸ another port: the backend the plugin started for the old port is
    stopped and one is started for the new port (not 'something answers but it is not a
    DNI backend' until Krita restarts)."""
    from dni_krita import settings as st

    from dni_client import launcher
    from dni_client.session import STATE_CONNECTED, STATE_STARTING

    monkeypatch.setattr(st, "BACKEND_FILE", str(tmp_path / "none.json"))
    monkeypatch.setattr(launcher, "port_open", FakeBackend.port_open)
    monkeypatch.setattr(launcher, "find_backend", lambda *a, **k: ["/opt/dni"])
    FakeBackend.made = []
    conn = make_plugin(FakeBackend).session
    settle(conn, lambda: conn.state == STATE_CONNECTED)
    old = FakeBackend.made[0]
    conn.settings.endpoint = "tcp://127.0.0.1:6200"
    conn.reset()
    settle(conn, lambda: conn.state == STATE_STARTING)
    assert old.stopped and [b.endpoint for b in FakeBackend.made] == [
        "tcp://127.0.0.1:5557", "tcp://127.0.0.1:6200"]
    conn.shutdown()


def _crashed_session(tmp_path, monkeypatch):
    """A plugin whose (fake) backend started, connected, then was killed; one tick has
    noticed. The backend factory starts a new FakeBackend when asked."""
    from dni_krita import plugin as plugin_module
    from dni_krita import settings as st
    from dni_krita.plugin import instance

    from dni_client import launcher
    from dni_client.session import STATE_CONNECTED

    monkeypatch.setattr(st, "BACKEND_FILE", str(tmp_path / "none.json"))
    monkeypatch.setattr(launcher, "port_open", FakeBackend.port_open)
    monkeypatch.setattr(launcher, "find_backend", lambda *a, **k: ["/opt/dni"])
    FakeBackend.made = []
    plugin_module.replace(make_plugin(FakeBackend))
    session = instance().session
    settle(session, lambda: session.state == STATE_CONNECTED)
    FakeBackend.made[0].stopped = True  # killed
    session.tick()
    return session


def test_apply_after_a_backend_crash_waits_for_the_restart(app, tmp_path, monkeypatch):
    """The backend died: the next Apply starts it again and runs once it is up (it does
    not stop at 'Starting the DNI backend…')."""
    from dni_krita.plugin import instance

    from dni_client.session import STATE_CONNECTED, STATE_ERROR

    session = _crashed_session(tmp_path, monkeypatch)
    assert session.state == STATE_ERROR and "stopped unexpectedly" in session.message
    doc, layer = make_doc(app)
    done = []
    handle = instance().start_job(doc, layer, session.family("tiny"), options(0.4),
                                  lambda new, error: done.append((new, error)))
    assert not handle.done and session.current is handle  # waiting, and the docker shows it
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        session.tick()
        time.sleep(0.01)
    assert done, (session.state, session.message, [b.polls for b in FakeBackend.made])
    (new, error), = done
    assert error is None and new.name() == "DNI Tiny 40%"
    assert len(FakeBackend.made) == 2 and session.state == STATE_CONNECTED


def test_a_crashed_backend_is_started_again_without_waiting_for_a_job(app, tmp_path,
                                                                     monkeypatch):
    """Seen in the real Krita: after a crash the session sat in its error state, so a
    dialog opened then never got its families and Apply did nothing."""

    from dni_client.session import STATE_CONNECTED, STATE_ERROR

    session = _crashed_session(tmp_path, monkeypatch)
    assert session.state == STATE_ERROR and "being started again" in session.message
    deadline = time.monotonic() + 10
    while session.state != STATE_CONNECTED and time.monotonic() < deadline:
        session.tick()  # only the GUI timer's tick: no job, no dialog asks for it
        time.sleep(0.01)
    assert session.state == STATE_CONNECTED, session.message
    assert len(FakeBackend.made) == 2 and session.families


def test_no_backend_anywhere_says_how_to_install(app, tmp_path, monkeypatch):
    from dni_krita import settings as st

    from dni_client import launcher
    from dni_client.errors import BackendError
    from dni_client.session import STATE_ERROR

    monkeypatch.setattr(st, "BACKEND_FILE", str(tmp_path / "none.json"))
    monkeypatch.setattr(launcher, "port_open", lambda *a, **k: False)
    monkeypatch.setattr(launcher, "find_backend", lambda *a, **k: None)
    conn = make_plugin(FakeBackend).session
    # Plain words and what to do: no shell command to type.
    with pytest.raises(BackendError, match=r"not installed, or DNI cannot find it\. Run the "
                       r"DNI installer again \(installers/install_krita_plugin\.py\)") as info:
        settle(conn, lambda: False)
    assert conn.state == STATE_ERROR and "`" not in str(info.value)


def test_remote_endpoint_is_never_started_locally(app, tmp_path, monkeypatch):
    from dni_krita import settings as st

    from dni_client import launcher
    from dni_client.errors import BackendError

    monkeypatch.setattr(st, "BACKEND_FILE", str(tmp_path / "none.json"))
    monkeypatch.setattr(launcher, "port_open", lambda *a, **k: False)
    app.writeSetting("DNI", "endpoint", "tcp://192.0.2.7:5557")
    FakeBackend.made = []
    conn = make_plugin(FakeBackend).session
    with pytest.raises(BackendError, match="runs on that computer"):
        settle(conn, lambda: False)
    assert FakeBackend.made == []


def test_settings_round_trip_through_kritarc(app):
    from dni_krita.settings import KritaSettings

    s = KritaSettings.load()
    b = s.backend
    assert b.endpoint == "tcp://127.0.0.1:5557" and s.preview_size == 384 and b.autostart
    b.endpoint, s.preview_size, b.autostart = "tcp://127.0.0.1:7000", 256, False
    b.server_public_key, b.backend_command = "KEY", ["/opt/dni/bin/dni"]
    s.save()
    again = KritaSettings.load()
    assert (again.backend.endpoint, again.preview_size, again.backend.autostart) == (
        "tcp://127.0.0.1:7000", 256, False)
    assert again.backend.server_public_key == "KEY"
    assert again.backend.backend_record()["command"] == ["/opt/dni/bin/dni"]
    assert again.backend.presets_path.startswith(app.app_data)


def test_families_are_cached_for_the_next_session(app):
    connected()
    from dni_krita.plugin import instance
    from dni_krita.settings import KritaSettings

    cached = KritaSettings.load().cached_families()
    assert cached and "tiny3" in {f["name"] for f in cached}
    instance().session.families = []  # as before the backend answers
    assert "tiny3" in {f.name for f in instance().known_families()}


# -- re-editable DNI layers ------------------------------------------------------------------

def _rerender(plugin, doc, layer, amount):
    done = []
    plugin.rerender(doc, layer, amount, lambda new, error: done.append((new, error)))
    deadline = time.monotonic() + 30
    while not done and time.monotonic() < deadline:
        plugin.session.tick()
        time.sleep(0.01)
    assert done and done[0][1] is None, done
    return done[0][0]


def test_a_dni_layer_remembers_how_it_was_made_and_renders_again_in_its_place(app):
    """The record lives in the document; re-rendering reads the source as it is now, uses
    the same area and selection, and the new layer takes the old one's place and look."""
    import dni_krita
    from dni_krita import layer_records
    from dni_krita.plugin import instance

    from dni_client.job import Amount

    doc, layer = make_doc(app, 40, 30)
    sel = fake.Selection(40, 30)
    sel.select(5, 4, 20, 15, 255)
    doc.setSelection(sel)
    first = dni_krita.run_filter("tiny", strength=0.2)
    record = layer_records.record_of(doc, first)
    assert record is not None and record.family == "tiny" and record.strength == 0.2
    assert record.mask is not None and record.area.selected
    doc.setSelection(None)  # the selection is gone: the record still knows it
    top = doc.createNode("On top", "paintlayer")
    doc.rootNode().addChildNode(top, first)
    doc.undo_log.clear()
    new = _rerender(instance(), doc, first, Amount(0.9, None))
    names = [n.name() for n in doc.rootNode().childNodes()]
    assert names == ["Paint", "DNI Tiny 90%", "On top"], names  # in the old one's place
    # Two undo steps: libkis cannot group them into one.
    assert [kind for kind, _name in doc.undo_log] == ["add", "remove"]
    # The same pixels as filtering with that strength inside the same selection.
    doc.setSelection(sel)
    reference = dni_krita.run_filter("tiny", strength=0.9, layer=layer)
    assert read(new, doc).tobytes() == read(reference, doc).tobytes()
    again = layer_records.record_of(doc, new)
    assert again is not None and again.strength == 0.9 and again.mask == record.mask
    # Its own amount (None): made again exactly as recorded.
    same = _rerender(instance(), doc, new, None)
    assert read(same, doc).tobytes() == read(new, doc).tobytes()
    assert layer_records.record_of(doc, same).strength == 0.9


def test_records_survive_only_for_results_that_can_be_made_again(app):
    import dni_krita
    from dni_krita import layer_records
    from dni_krita.plugin import instance

    from dni_client.errors import FilterError

    doc, layer = make_doc(app, 16, 12)
    replaced = dni_krita.run_filter("tiny", strength=0.5, target="replace")
    assert layer_records.record_of(doc, replaced) is None  # its source is gone
    painted = doc.createNode("Painted", "paintlayer")
    doc.rootNode().addChildNode(painted, None)
    with pytest.raises(FilterError, match="not made by DNI"):
        instance().rerender(doc, painted, None, lambda *a: None)
    doc2, layer2 = make_doc(app, 16, 12)
    result = dni_krita.run_filter("tiny", strength=0.5)
    layer2.remove()
    with pytest.raises(FilterError, match="deleted"):
        instance().rerender(doc2, result, None, lambda *a: None)
    # A damaged annotation is ignored, never a crash.
    doc2.setAnnotation(layer_records.ANNOTATION, "x", b"\xff not json")
    assert layer_records.record_of(doc2, result) is None
