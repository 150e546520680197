"""Shared fixtures: tiny random-weight SAM2 + adapter checkpoints in the official formats."""

from __future__ import annotations

import http.server
import re
import threading

import numpy as np
import pytest

from napari_sansa.samples import cells

WIDGET = ("napari-sansa", "SANSA few-shot segmentation")
TEST_IMAGE_SIZE = 256  # model input side for tests: 16x fewer pixels than 1024, same code paths


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """Weights and spilled features go to a temporary folder, never the user's cache."""
    import os

    old = os.environ.get("NAPARI_SANSA_CACHE_DIR")
    os.environ["NAPARI_SANSA_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("NAPARI_SANSA_CACHE_DIR", None)
    else:
        os.environ["NAPARI_SANSA_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def private_session_dir(monkeypatch, tmp_path):
    """Sessions the widget saves as it changes go to the test's folder, never the user's."""
    monkeypatch.setenv("NAPARI_SANSA_SESSION_DIR", str(tmp_path / "sessions"))


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """(sam2 path, adapter path) of a random-weight SAM2-tiny with SANSA adapters on stages 2-3."""
    from napari_sansa.engine.network.random_weights import write_random_checkpoints

    return write_random_checkpoints(tmp_path_factory.mktemp("weights"), size="tiny")


@pytest.fixture(scope="session")
def config():
    from napari_sansa import SansaConfig

    return SansaConfig(device="cpu", image_size=TEST_IMAGE_SIZE, precision="fp32")


@pytest.fixture(scope="session")
def model(checkpoints, config):
    """A model shared by tests that do not count encoder passes."""
    from napari_sansa import Sansa

    return Sansa.from_checkpoints(*checkpoints, config=config)


@pytest.fixture(scope="session")
def loaded_models():
    """The models of ``load_once``, by (files, settings)."""
    return {}


@pytest.fixture
def fresh_model(model_with):
    """A model with empty caches (features, memories, encoder count) around the shared model's
    SAM2 weights: loading them again for each test would give the same weights, seconds later.
    Tests that change the weights or the SAM2 modules build their own model."""
    return model_with()


@pytest.fixture
def model_with(model, config):
    """``model_with(**settings)``: a model with empty caches and other settings (feature budgets,
    batch size) around the shared model's fp32 SAM2 weights; not for settings that change the
    weights (precision, compile)."""
    from dataclasses import replace

    from napari_sansa import Sansa

    def make(**settings):
        assert not {"precision", "compile", "image_size", "device"} & set(settings), "build a model"
        return Sansa(model.sam, replace(config, **settings), model.info)

    return make


@pytest.fixture(scope="session")
def samples():
    """Six (image, labels) pairs of synthetic cells."""
    return cells(6, seed=3)


@pytest.fixture
def encoder_calls(request):
    """Count image-encoder forward passes of a model: ``calls = encoder_calls(model)``."""
    handles = []

    def attach(model):
        calls = []
        handles.append(model.sam.image_encoder.register_forward_hook(lambda *_: calls.append(1)))
        return calls

    yield attach
    for handle in handles:
        handle.remove()


def disk_mask(shape, center, radius):
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    return (rr - center[0]) ** 2 + (cc - center[1]) ** 2 <= radius**2


@pytest.fixture
def errors(monkeypatch):
    """Messages the widget shows as error notifications."""
    shown = []
    from napari_sansa.plugin import notifications

    monkeypatch.setattr(notifications, "error", shown.append)
    return shown


@pytest.fixture
def load_once(monkeypatch, loaded_models):
    """``Sansa.from_checkpoints`` loads each (files, settings) once in the session and then hands
    back that model (its caches warm): for the widget and command-line tests, which would
    otherwise load the same files again for every run. Loading itself: test_checkpoints.py."""
    from napari_sansa import Sansa

    load = Sansa.from_checkpoints

    def once(sam2, adapter, **kwargs):
        key = (str(sam2), str(adapter), repr(sorted(kwargs.items())))
        if key not in loaded_models:
            loaded_models[key] = load(sam2, adapter, **kwargs)
        return loaded_models[key]

    monkeypatch.setattr(Sansa, "from_checkpoints", staticmethod(once))


@pytest.fixture
def open_widget(make_napari_viewer, checkpoints, monkeypatch, tmp_path, load_once):
    """A viewer with the sample cells and the widget docked (local random weights preselected)."""
    monkeypatch.setenv("NAPARI_SANSA_SAM2_CHECKPOINT", str(checkpoints[0]))
    monkeypatch.setenv("NAPARI_SANSA_ADAPTER_CHECKPOINT", str(checkpoints[1]))
    monkeypatch.setenv("NAPARI_SANSA_CONFIG_DIR", str(tmp_path / "config"))

    def make(sample="cells"):
        viewer = make_napari_viewer()
        if sample:
            viewer.open_sample("napari-sansa", sample)
        _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
        widget.image_size.setValue(256)
        widget.device.setCurrentText("cpu")
        return viewer, widget

    return make


class _SlowFiles(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (path -> bytes) in small pieces, honouring HTTP Range; the first answer
    of a path in ``drop_after`` stops after that many bytes, as a dropped connection does.
    ``stop`` (an Event) makes it send nothing more."""

    files: dict[str, bytes] = {}
    drop_after: dict[str, int] = {}
    sent: list[int] = []
    ranges: list[str] = []
    stop = threading.Event()
    piece = 4096

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start, asked = 0, self.headers.get("Range")
        self.ranges.append(asked or "")
        if asked:
            start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        end = min(len(data), start + self.drop_after.pop(self.path, len(data)))
        for offset in range(start, end, self.piece):
            if self.stop.is_set():
                return
            self.wfile.write(data[offset : min(end, offset + self.piece)])
            self.sent.append(min(end, offset + self.piece) - offset)
            self.stop.wait(0.002)  # slow: a cancel arrives long before the end
        self.close_connection = True


@pytest.fixture
def slow_server():
    """A slow loopback HTTP server (Range requests, one dropped connection on demand); stops itself."""
    handler = type("Handler", (_SlowFiles,), {"files": {}, "drop_after": {}, "sent": [], "ranges": []})
    handler.stop = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    handler.stop.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def exported(qtbot):
    """``exported(widget, folder, **options)``: the widget's export, as the Export… button starts
    it (in a worker), waited for; the files it wrote."""

    def export(widget, folder, **options):
        worker = widget.export(folder, **options)
        assert worker is not None
        qtbot.waitUntil(lambda: not widget.run_files.job.running(), timeout=120_000)
        return widget.run_files.written

    return export
