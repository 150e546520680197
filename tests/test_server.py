"""``napari-sansa serve`` and its clients: the command line and the widget compute on a server
(random test weights, on 127.0.0.1, mutual TLS) and give what a local run gives."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sansa.cli.main import main
from napari_sansa.engine.runs.thresholds import labels_from_logits
from napari_sansa.samples import cells

SERVER_LIFETIME_S = 600  # a server started here stops by itself after this, whatever happens
READY_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model_args(checkpoints) -> list[str]:
    sam2, adapter = checkpoints
    return ["--sam2", str(sam2), "--adapter", str(adapter), "--device", "cpu", "--precision", "fp32",
            "--image-size", "256"]  # fmt: skip


class Served:
    """A ``napari-sansa serve`` subprocess, its address and credentials."""

    def __init__(self, checkpoints, folder: Path, port: int | None = None) -> None:
        self.credentials = folder / "credentials"
        self.port = port or _free_port()
        command = [sys.executable, "-c", "from napari_sansa.cli.main import main; raise SystemExit(main())"]
        args = ["serve", "--port", str(self.port), "--credentials", str(self.credentials)]
        if sys.platform != "win32" and os.path.exists("/usr/bin/timeout"):
            command = ["timeout", str(SERVER_LIFETIME_S), *command]
        self.process = subprocess.Popen(
            [*command, *args, *_model_args(checkpoints)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        line = ""
        while "ready" not in line and time.monotonic() < deadline and self.process.poll() is None:
            line = self.process.stdout.readline()
        assert "ready" in line, "the server did not start"
        self.address = next(word for word in line.split() if word.startswith("tls://"))

    @property
    def client(self) -> Path:
        return self.credentials / "client"

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(30)
        self.kill()


@pytest.fixture(scope="module")
def server(checkpoints, tmp_path_factory):
    served = Served(checkpoints, tmp_path_factory.mktemp("server"))
    yield served
    served.stop()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    samples = cells(4)
    for i, (image, _) in enumerate(samples):
        tifffile.imwrite(folder / f"cells_{i}.tif", image)
    tifffile.imwrite(folder / "mask.tif", samples[0][1])
    return folder


def _segment(images: Path, out: Path, *extra: str) -> int:
    targets = [str(images / f"cells_{i}.tif") for i in (1, 2, 3)]
    return main(["segment", "-r", f"{images / 'cells_0.tif'}:{images / 'mask.tif'}", *targets,
                 "--out", str(out), *extra])  # fmt: skip


def test_the_credentials_are_the_owners_only_and_the_client_folder_is_what_a_laptop_needs(server):
    assert sorted(p.name for p in server.client.iterdir()) == ["ca.pem", "client.key", "client.pem"]
    if sys.platform != "win32":
        for path in server.credentials.rglob("*"):
            assert path.stat().st_mode & 0o077 == 0, path


def test_the_command_line_through_the_server_writes_what_a_local_run_writes(
    server, images, checkpoints, tmp_path
):
    assert _segment(images, tmp_path / "local", *_model_args(checkpoints)) == 0
    remote = ("--server", server.address, "--credentials", str(server.client))
    assert _segment(images, tmp_path / "remote", *remote) == 0
    local = sorted((tmp_path / "local").glob("*_labels.*"))
    assert len(local) == 3
    for path in local:
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "remote" / path.name), tifffile.imread(path))
    (tmp_path / "remote" / local[1].name).unlink()  # resumed: only the missing one is done again
    assert _segment(images, tmp_path / "remote", *remote, "--resume") == 0
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "remote" / local[1].name), tifffile.imread(local[1])
    )


def _refused(images: Path, out: Path, capsys, *server: str) -> str:
    started = time.monotonic()
    assert _segment(images, out, *server) == 2
    assert time.monotonic() - started < 30
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("napari-sansa: error")]
    assert len(lines) == 1
    assert not out.exists() or not list(out.glob("*_labels.*"))  # nothing computed
    return lines[0]


def test_plain_tcp_no_credentials_and_another_servers_credentials_are_refused_in_one_line(
    server, images, tmp_path, capsys
):
    from napari_sansa.distributed import ensure_credentials

    plain = server.address.replace("tls://", "tcp://")
    assert "tcp:// refused" in _refused(
        images, tmp_path / "a", capsys, "--server", plain, "--credentials", str(server.client)
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "No client credentials" in _refused(
        images, tmp_path / "b", capsys, "--server", server.address, "--credentials", str(empty)
    )
    other = ensure_credentials(tmp_path / "other") / "client"
    assert "Cannot connect" in _refused(
        images, tmp_path / "c", capsys, "--server", server.address, "--credentials", str(other)
    )


def test_the_server_requires_a_client_certificate_in_the_handshake(server):
    import ssl

    context = ssl.create_default_context(cafile=str(server.client / "ca.pem"))
    context.check_hostname = False
    host, port = server.address.removeprefix("tls://").rsplit(":", 1)
    with (
        pytest.raises((ssl.SSLError, OSError)),
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.sendall(b"\0" * 8)
        assert tls.recv(1)  # a server that does not require a certificate would answer


NAPARI_CLIENT = """
import json, sys, time
import numpy as np
import napari
from qtpy.QtWidgets import QApplication
from napari_sansa.samples import cells

viewer = napari.Viewer(show=False)
viewer.open_sample("napari-sansa", "cells")
_, widget = viewer.window.add_plugin_dock_widget("napari-sansa", "SANSA few-shot segmentation")
widget.connect_server(sys.argv[1], sys.argv[2])
widget.prompt_image.setCurrentText("cells 0")
layer = widget.add_prompt_layer("labels")
truth = cells(6)[0][1]
for c in (1, 2):
    layer.data[truth == c] = c
layer.refresh()
worker = widget.run()
deadline = time.monotonic() + 300
while widget.worker is not None and time.monotonic() < deadline:
    QApplication.processEvents()
    time.sleep(0.01)
np.save(sys.argv[3], np.stack([viewer.layers[f"cells {i} [SANSA]"].data for i in range(1, 6)]))
suggested = widget.suggest_next()  # a worker: the server ranks
while not isinstance(suggested, str) and widget.suggestion is None and time.monotonic() < deadline:
    QApplication.processEvents()
    time.sleep(0.01)
suggested = suggested if isinstance(suggested, str) else widget.suggestion
from napari_sansa.engine.inputs.prompts import Mask, Reference
(image, truth), (target, _) = cells(2)
found = next(iter(widget.model.propagate([Reference(image, {1: Mask(truth == 1)})], [target])))
objects = found.instances("watershed")  # made on the server
report = {"torch": "torch" in sys.modules, "status": widget.status.text(), "next": suggested,
          "objects": int(objects.labels.max()) == len(objects.table)}
print(json.dumps(report))
widget.disconnect_server()
viewer.close()
"""


def test_a_napari_process_using_the_server_gets_the_local_labels_without_importing_torch(
    server, model, tmp_path
):
    from napari_sansa import Mask, Reference

    env = {**os.environ, "NAPARI_SANSA_CONFIG_DIR": str(tmp_path / "config"), "QT_QPA_PLATFORM": "offscreen"}
    out = tmp_path / "labels.npy"
    done = subprocess.run(
        [sys.executable, "-c", NAPARI_CLIENT, server.address, str(server.client), str(out)],
        capture_output=True, text=True, env=env, timeout=400,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["torch"] is False
    assert "5 of 5 images segmented" in report["status"]
    assert report["next"] and report["next"].startswith("cells ")  # ranked on the server
    assert report["objects"]  # a result's objects, from the server
    image, truth = cells(6)[0]
    reference = Reference(image, {1: Mask(truth == 1), 2: Mask(truth == 2)})
    expected = model.segment([reference], [image for image, _ in cells(6)[1:]])
    np.testing.assert_array_equal(np.load(out), np.stack([p.labels for p in expected]))


def test_a_server_killed_during_a_run_ends_it_with_one_line_and_a_restart_loses_nothing(
    checkpoints, tmp_path, open_widget, qtbot, monkeypatch
):
    from napari_sansa.plugin import notifications

    shown: list[str] = []
    monkeypatch.setattr(notifications, "error", shown.append)
    served = Served(checkpoints, tmp_path)
    try:
        viewer, widget = open_widget()
        widget.connect_server(served.address, served.client)
        widget.prompt_image.setCurrentText("cells 0")
        layer = widget.add_prompt_layer("labels")
        layer.data[cells(6)[0][1] == 1] = 1
        layer.refresh()
        first: list[object] = []

        def kill_after_the_first(event) -> None:
            if type(event).__name__ == "TargetDone" and not first:
                first.append(event.key)
                served.kill()

        widget.run().yielded.connect(kill_after_the_first)
        qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
        kept = [lyr for lyr in viewer.layers if lyr.name.endswith("[SANSA]") and lyr.data.any()]
        assert 1 <= len(kept) < 5  # the finished results are kept; the run ended
        assert len(shown) == 1 and "stopped or the network dropped" in shown[0]
        assert "\n" not in shown[0]
        assert "Lost" in widget.compute_panel.state.text()

        served = Served(checkpoints, tmp_path, served.port)  # the same address and credentials
        again = widget.run()
        qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
        assert again is not None and len(shown) == 1
        assert all(viewer.layers[f"cells {i} [SANSA]"].data.any() for i in range(1, 6))
    finally:
        served.stop()


def test_the_live_preview_and_the_threshold_slider_work_through_the_server(server, open_widget, qtbot):
    viewer, widget = open_widget()
    remote = widget.connect_server(server.address, server.client)
    assert widget.model is remote
    widget.prompt_image.setCurrentText("cells 0")
    prompts = widget.add_prompt_layer("labels")
    prompts.brush_size = 20
    widget.live_preview.setChecked(True)
    prompts.paint((60, 60), 1)
    qtbot.waitUntil(lambda: widget.preview.written >= 1 and widget.preview.worker is None, timeout=60_000)
    preview = widget.preview.last
    assert preview.model is remote and preview.logits  # the logits the slider needs came back
    layer = viewer.layers["cells 5 [SANSA preview]"]
    widget.controls.threshold.setValue(80)  # re-labelled here from the logits: no model call
    expected = labels_from_logits(preview.logits, widget.controls.threshold_logit, layer.data.dtype)
    qtbot.waitUntil(lambda: np.array_equal(layer.data, expected), timeout=10_000)
    widget.disconnect_server()
    assert widget.model is None  # the next job loads a model on this computer


def test_the_compute_section_connects_refuses_in_one_line_and_remembers(
    server, open_widget, qtbot, monkeypatch, tmp_path
):
    from qtpy.QtCore import Qt

    from napari_sansa.plugin import notifications

    shown: list[str] = []
    monkeypatch.setattr(notifications, "error", shown.append)
    _, widget = open_widget()
    panel = widget.compute_panel
    panel.where.setCurrentText("a server…")
    panel.address.setText(server.address)
    panel.credentials.setText(str(tmp_path))  # no client certificate there
    qtbot.mouseClick(panel.connect_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: bool(shown) and panel.connect_button.isEnabled(), timeout=30_000)
    assert len(shown) == 1 and "No client credentials" in shown[0] and panel.remote is None
    panel.credentials.setText(str(server.client))
    qtbot.mouseClick(panel.connect_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.remote is not None, timeout=30_000)
    assert widget.model is panel.remote and "on cpu at tls://" in panel.state.text()
    _, again = open_widget(sample=None)  # napari started again: the server is remembered
    assert again.compute_panel.address.text() == server.address
    assert again.compute_panel.credentials.text() == str(server.client)
    panel.where.setCurrentText("this computer")  # disconnects
    assert panel.remote is None and widget.model is None


def test_the_server_serves_no_plain_http(server):
    """Dask's HTTP endpoints (health, metrics, dashboard) would answer without TLS: none is served."""
    import urllib.error
    import urllib.request

    from distributed import Client

    from napari_sansa.distributed.credentials import client_security

    with Client(server.address, security=client_security(server.client), timeout="10s") as client:
        ports = [client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.http_server.port)]
        ports += client.run(lambda dask_worker: dask_worker.http_server.port).values()
    for port in ports:
        for path in ("/health", "/metrics", "/status", "/json/identity.json"):
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
